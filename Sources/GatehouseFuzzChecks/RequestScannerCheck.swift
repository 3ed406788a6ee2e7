import GatehouseCore
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// One request as a parser read it.
public struct ParsedRequest: Equatable, Sendable {
    public var method: String
    public var uri: String
    public var versionMinor: Int
    /// Names as sent; values with surrounding spaces and tabs removed.
    public var headers: [[String]]
    /// The body's data (dechunked).
    public var body: [UInt8]
    /// Nothing after this request is read as HTTP, in the parser's own judgement: the connection
    /// closes after it (no keep-alive) or switches protocols (`Upgrade`). Not compared: a parser
    /// that keeps a connection open where the other closes it shows as more requests read.
    public var endsTheStream: Bool

    public init(method: String, uri: String, versionMinor: Int, headers: [[String]], body: [UInt8], endsTheStream: Bool) {
        self.method = method
        self.uri = uri
        self.versionMinor = versionMinor
        self.headers = headers
        self.body = body
        self.endsTheStream = endsTheStream
    }

    public static func == (a: ParsedRequest, b: ParsedRequest) -> Bool {
        a.method == b.method && a.uri == b.uri && a.versionMinor == b.versionMinor && a.headers == b.headers && a.body == b.body
    }
}

/// What a parser made of a stream of requests: the requests it completed, and whether it refused
/// the stream after them.
public struct ParsedRequests: Equatable, Sendable {
    public var requests: [ParsedRequest] = []
    public var refused = false
    public init() {}
}

extension FuzzChecks {
    /// The request scanners (``RequestHeadScanner``, ``RequestBodyScanner``) against SwiftNIO's
    /// `HTTPRequestDecoder` on the same bytes. Gatehouse's parser may refuse what NIO accepts
    /// (it is stricter on purpose); where both accept, both read the same requests — method,
    /// target, version, headers and body — ending at the same place. It may accept what NIO
    /// refuses only for a method NIO's parser does not know (every upper-case token is a method
    /// to Gatehouse, which answers it 405 unless `methods_allowed` names it).
    public static func requestScanner(_ input: [UInt8]) -> String? {
        let scanned = scanRequests(input)
        let reference = decodeRequestsWithNIO(input)
        let completed = scanned.requests.count
        let common = min(completed, reference.requests.count)
        for k in 0..<common where scanned.requests[k] != reference.requests[k] {
            return "request \(k): Gatehouse read \(scanned.requests[k]), NIO \(reference.requests[k])"
        }
        if completed > reference.requests.count {
            let extra = scanned.requests[reference.requests.count]
            if reference.refused && !knownToNIO(extra.method) { return nil }
            return "Gatehouse completed \(completed) request(s) where NIO completed \(reference.requests.count) (refused: \(reference.refused)); the next was \(extra)"
        }
        return nil
    }

    static func knownToNIO(_ method: String) -> Bool {
        if case .RAW = HTTPMethod(rawValue: method) { return false }
        return true
    }

    public static func scanRequests(_ stream: [UInt8]) -> ParsedRequests {
        var result = ParsedRequests()
        var heads = RequestHeadScanner(limits: RequestHeadScanner.Limits())
        var offset = 0
        return stream.withUnsafeBytes { raw in
            while offset < raw.count {
                switch heads.scan(UnsafeRawBufferPointer(rebasing: raw[offset...])) {
                case .needMore:
                    return result
                case .failure:
                    result.refused = true
                    return result
                case .head(let head, let consumed):
                    offset += consumed
                    var body: [UInt8] = []
                    var scanner = RequestBodyScanner(head.framing)
                    var ended = false
                    while !ended {
                        let rest = UnsafeRawBufferPointer(rebasing: raw[offset...])
                        switch scanner.step(rest) {
                        case .needMore:
                            return result
                        case .failure:
                            result.refused = true
                            return result
                        case .body(let consumed, _, _, let payload):
                            // Payload bytes are the data of a length body or of a chunk.
                            if payload > 0 { body += rest[0..<payload] }
                            offset += consumed
                        case .end(let consumed, _):
                            offset += consumed
                            ended = true
                        }
                    }
                    let request = ParsedRequest(
                        method: head.method, uri: head.uri, versionMinor: head.versionMinor,
                        headers: head.headerStrings.map { [$0.name, $0.value] }, body: body, endsTheStream: !head.keepAlive || head.asksUpgrade)
                    result.requests.append(request)
                    if request.endsTheStream { return result }
                }
            }
            return result
        }
    }

    public static func decodeRequestsWithNIO(_ stream: [UInt8]) -> ParsedRequests {
        var result = ParsedRequests()
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        var current: ParsedRequest?
        var stopped = false
        func drain() {
            while !stopped, let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let head):
                    current = ParsedRequest(
                        method: head.method.rawValue, uri: head.uri, versionMinor: head.version.minor,
                        headers: head.headers.map { [$0.name, trimmed($0.value)] }, body: [],
                        endsTheStream: !head.isKeepAlive || head.headers.contains(name: "upgrade"))
                case .body(var bytes):
                    current?.body += bytes.readBytes(length: bytes.readableBytes) ?? []
                case .end:
                    if let request = current {
                        result.requests.append(request)
                        if request.endsTheStream { stopped = true }
                    }
                    current = nil
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
            if !stopped { result.refused = true }
            // A channel left open after an error keeps its pipeline alive (a leak under ASan).
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
        return result
    }
}

/// `text` without leading and trailing spaces and tabs.
private func trimmed(_ text: String) -> String {
    let bytes = Array(text.utf8)
    var start = 0
    var end = bytes.count
    while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
    while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
    return String(decoding: bytes[start..<end], as: UTF8.self)
}
