import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A parsed HTTP response as a test reads it.
public struct RawResponse {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
    public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
}

public enum RawClientError: Error { case connectFailed(Int32), closed, timeout, malformed(String) }

/// A blocking TCP client that sends exact bytes and reads responses, so tests can send requests
/// no well-behaved HTTP library would produce. Every read has a timeout: a test never hangs.
public final class RawClient {
    public let fd: Int32
    private var buffer: [UInt8] = []

    /// - Parameter source: an IPv4 address to connect from (any of 127.0.0.0/8 works on Linux
    ///   loopback), to appear to Gatehouse as another client.
    public init(port: Int, host: String = "127.0.0.1", timeoutSeconds: Int = 10, source: String? = nil) throws {
        let isV6 = host.contains(":")
        fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source, !isV6 {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard bound == 0 else {
                let e = errno
                close(fd)
                throw RawClientError.connectFailed(e)
            }
        }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var result: Int32
        if isV6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET6, host, &addr.sin6_addr)
            result = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &addr.sin_addr)
            result = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard result == 0 else {
            let e = errno
            close(fd)
            throw RawClientError.connectFailed(e)
        }
    }

    deinit { close(fd) }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw RawClientError.closed }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false on orderly close.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { return false }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { throw RawClientError.timeout }
            if errno == ECONNRESET { return false }
            throw RawClientError.closed
        }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Whether the server closed the connection (waits up to the read timeout).
    public func isClosedByPeer() -> Bool {
        do {
            while try fill() {}
            return true
        } catch {
            return false
        }
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw RawClientError.closed }
        }
    }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { guard try fill() else { throw RawClientError.closed } }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Reads raw bytes that are already there or arrive (tunnel tests).
    public func readAvailable(atLeast n: Int) throws -> [UInt8] {
        while buffer.count < n { guard try fill() else { throw RawClientError.closed } }
        let out = buffer
        buffer.removeAll()
        return out
    }

    /// Reads one response. `discardBody` counts instead of keeping body bytes (large downloads);
    /// `headRequest` knows a HEAD response has no body.
    public func readResponse(headRequest: Bool = false, discardBody: Bool = false, bodyCount: UnsafeMutablePointer<Int>? = nil) throws -> RawResponse {
        var statusLine = try readLine()
        var headers: [(String, String)] = []
        var status = 0
        while true {
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let code = Int(parts[1]) else { throw RawClientError.malformed(statusLine) }
            status = code
            headers = []
            while true {
                let line = try readLine()
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { throw RawClientError.malformed(line) }
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
            }
            if code >= 100 && code < 200 && code != 101 {
                statusLine = try readLine()
                continue
            }
            break
        }
        func header(_ n: String) -> String? { headers.first { $0.0.lowercased() == n }?.1 }
        var body: [UInt8] = []
        var count = 0
        func take(_ bytes: [UInt8]) {
            count += bytes.count
            if !discardBody { body.append(contentsOf: bytes) }
        }
        if headRequest || status == 204 || status == 304 || status == 101 {
        } else if header("transfer-encoding")?.lowercased() == "chunked" {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw RawClientError.malformed(sizeLine) }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    break
                }
                var left = size
                while left > 0 {
                    let n = min(left, 1 << 20)
                    take(try readExactly(n))
                    left -= n
                }
                _ = try readLine()
            }
        } else if let cl = header("content-length"), let n = Int(cl) {
            var left = n
            while left > 0 {
                let piece = min(left, 1 << 20)
                take(try readExactly(piece))
                left -= piece
            }
        } else {
            while try fill() {}
            take(buffer)
            buffer.removeAll()
        }
        bodyCount?.pointee = count
        return RawResponse(status: status, headers: headers, body: body)
    }

    /// Sends a request and reads its response.
    public func request(_ raw: String) throws -> RawResponse {
        try send(raw)
        return try readResponse(headRequest: raw.hasPrefix("HEAD "))
    }
}
