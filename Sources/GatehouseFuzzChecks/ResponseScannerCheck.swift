import GatehouseCore
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// What a parser made of a byte stream of responses: each response's status (interim ones
/// included, in order), the final responses' bodies, and whether it refused the stream.
public struct ParsedResponses: Equatable, Sendable {
    /// One per head, interim included.
    public var statuses: [Int] = []
    /// One per completed final response: its body's data (dechunked).
    public var bodies: [[UInt8]] = []
    public var refused = false
    /// A 101 switched protocols: nothing after it is HTTP.
    public var switched = false

    public init(statuses: [Int] = [], bodies: [[UInt8]] = [], refused: Bool = false, switched: Bool = false) {
        self.statuses = statuses
        self.bodies = bodies
        self.refused = refused
        self.switched = switched
    }
}

extension FuzzChecks {
    /// The response framing scanner against SwiftNIO's `HTTPResponseDecoder` on the same bytes.
    /// The first byte says which of the first eight requests were HEAD (bit k: request k); the
    /// rest is what the device sent. The scanner may refuse what NIO accepts (it is stricter on
    /// purpose), never the other way round, and where both accept, both see the same responses:
    /// the same statuses, and the same bodies ending at the same place.
    public static func responseScanner(_ input: [UInt8]) -> String? {
        guard let flags = input.first else { return nil }
        let stream = Array(input.dropFirst())
        let heads = (0..<16).map { k in k < 8 && flags & (1 << k) != 0 }
        return problem(scanned: scan(stream, heads: heads), reference: decodeWithNIO(stream, heads: heads))
    }

    /// What is wrong with the scanner's reading of a stream next to NIO's: it ended a response
    /// NIO did not end the same way, or saw a status NIO did not.
    public static func problem(scanned: ParsedResponses, reference: ParsedResponses) -> String? {
        let completed = scanned.bodies.count
        if completed > reference.bodies.count || scanned.bodies != Array(reference.bodies.prefix(completed)) {
            return "the scanner ended \(completed) response(s) with bodies \(scanned.bodies.map(\.count)) where NIO ended \(reference.bodies.map(\.count)) (statuses \(scanned.statuses) / \(reference.statuses))"
        }
        if scanned.statuses.count > reference.statuses.count || scanned.statuses != Array(reference.statuses.prefix(scanned.statuses.count)) {
            return "the scanner saw statuses \(scanned.statuses), NIO \(reference.statuses)"
        }
        return nil
    }

    public static func scan(_ stream: [UInt8], heads: [Bool]) -> ParsedResponses {
        var result = ParsedResponses()
        var scanner = ResponseFramingScanner()
        var request = 0
        scanner.expectResponse(requestWasHEAD: heads[0])
        var offset = 0
        var body: [UInt8] = []
        var closed = false
        var keepAlive = true
        while true {
            let step: ResponseFramingScanner.Step = stream.withUnsafeBytes { raw in
                if offset >= stream.count && !closed {
                    return scanner.step(UnsafeRawBufferPointer(rebasing: raw[raw.count...]))
                }
                return scanner.step(UnsafeRawBufferPointer(rebasing: raw[offset...]))
            }
            switch step {
            case .needMore:
                if closed { return result }
                closed = true
                switch scanner.connectionClosed() {
                case .end:
                    result.bodies.append(body)
                    return result
                case .failure:
                    result.refused = true
                    return result
                default:
                    return result
                }
            case .head(let head, let consumed):
                offset += consumed
                result.statuses.append(head.status)
                if !head.isInterim { keepAlive = head.keepAlive }
                if head.status == 101 {
                    result.switched = true
                    return result
                }
            case .body(let consumed, let payloadOffset, let payloadCount):
                body += stream[(offset + payloadOffset)..<(offset + payloadOffset + payloadCount)]
                offset += consumed
            case .end(let consumed):
                offset += consumed
                result.bodies.append(body)
                body = []
                request += 1
                // Gatehouse closes a device connection after a response that does not keep it
                // alive: whatever followed is never read (NIO stops there too).
                guard keepAlive, request < heads.count else { return result }
                scanner.expectResponse(requestWasHEAD: heads[request])
                if offset >= stream.count { return result }
            case .failure:
                result.refused = true
                return result
            }
        }
    }

    public static func decodeWithNIO(_ stream: [UInt8], heads: [Bool]) -> ParsedResponses {
        var result = ParsedResponses()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(
            HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward)))
        for isHEAD in heads {
            _ = try? channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: isHEAD ? .HEAD : .GET, uri: "/")))
        }
        var body: [UInt8] = []
        func drain() {
            while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
                switch part {
                case .head(let head):
                    result.statuses.append(Int(head.status.code))
                    if head.status.code == 101 { result.switched = true }
                case .body(var bytes):
                    body += bytes.readBytes(length: bytes.readableBytes) ?? []
                case .end:
                    result.bodies.append(body)
                    body = []
                }
            }
        }
        do {
            try channel.writeInbound(channel.allocator.buffer(bytes: stream))
            drain()
            _ = try channel.finish(acceptAlreadyClosed: true)
            drain()
        } catch {
            drain()
            result.refused = true
            // A channel left open after an error keeps its pipeline alive (a leak under ASan).
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
        return result
    }
}
