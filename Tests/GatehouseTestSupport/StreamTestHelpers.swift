import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Helpers for the end-to-end streaming, tunnel, failure, framing, limits and connection tests.
/// Everything is a static function on ``StreamTest`` (no extensions on shared support types), so
/// nothing here can collide with helpers other test files add.
public enum StreamTest {
    /// The header line carrying a valid API key.
    public static let keyHeader = "X-Api-Key: \(ProxyFixture.aliceKey)"

    // MARK: Payloads

    /// One MiB of random bytes, made once per test process.
    private static let randomMiB: [UInt8] = {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        bytes.withUnsafeMutableBytes { raw in
            for offset in stride(from: 0, to: raw.count, by: 8) {
                raw.storeBytes(of: generator.next() as UInt64, toByteOffset: offset, as: UInt64.self)
            }
        }
        return bytes
    }()

    /// `count` bytes of random-looking data; `seed` is stamped into the first bytes so that two
    /// pieces of one upload differ (a lost or repeated piece changes the hash).
    public static func payload(_ count: Int, seed: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            out.append(contentsOf: randomMiB.prefix(count - out.count))
        }
        withUnsafeBytes(of: UInt64(seed).bigEndian) { stamp in
            for i in 0..<min(8, count) { out[i] = stamp[i] }
        }
        return out
    }

    public static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    // MARK: Sockets

    /// A loopback TCP port on which nothing listens (bound once, then closed).
    public static func unusedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawClientError.connectFailed(errno) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw RawClientError.connectFailed(errno) }
        var out = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &out) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw RawClientError.connectFailed(errno) }
        return Int(UInt16(bigEndian: out.sin_port))
    }

    /// Whether a TCP connection to the port on loopback is accepted.
    public static func canConnect(port: Int) -> Bool {
        (try? RawClient(port: port, timeoutSeconds: 2)) != nil
    }

    /// The number of ESTABLISHED TCP sockets on this host whose local port is `port`: for a
    /// listening server, its open accepted connections. Read from /proc/net/tcp{,6}.
    public static func establishedConnections(localPort port: Int) -> Int {
        var count = 0
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = readWholeFile(file) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 3, let portHex = fields[1].split(separator: ":").last,
                    Int(portHex, radix: 16) == port, fields[3] == "01"
                else { continue }
                count += 1
            }
        }
        return count
    }

    /// Reads a file to its end with read(2) in a loop: procfs files report size 0 and hand out
    /// one page per read, so reading "the file's size" would cut them short.
    private static func readWholeFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Ends the client's side of the connection now (FIN both ways), as a client that leaves.
    /// The descriptor itself is closed later by the client's deinit.
    public static func hangUp(_ client: RawClient) {
        _ = shutdown(client.fd, Int32(SHUT_RDWR))
    }

    // MARK: Reading

    /// Reads raw bytes until `done` holds for everything read so far.
    public static func read(_ client: RawClient, until done: ([UInt8]) -> Bool) throws -> [UInt8] {
        var seen: [UInt8] = []
        while !done(seen) {
            seen += try client.readAvailable(atLeast: 1)
        }
        return seen
    }

    /// Reads raw bytes until the peer closes (`closed` true) or the client's read timeout passes
    /// (`closed` false).
    public static func readUntilEnd(_ client: RawClient) -> (bytes: [UInt8], closed: Bool) {
        var seen: [UInt8] = []
        while true {
            do {
                seen += try client.readAvailable(atLeast: 1)
            } catch RawClientError.timeout {
                return (seen, false)
            } catch {
                return (seen, true)
            }
        }
    }

    /// How reading one response ended.
    public enum Outcome: CustomStringConvertible {
        case response(RawResponse)
        /// The connection ended before a complete response.
        case closedEarly
        /// Nothing more arrived within the client's read timeout, and the connection stayed open.
        case timedOut
        case malformed(String)

        public var description: String {
            switch self {
            case .response(let r): return "response \(r.status)"
            case .closedEarly: return "connection closed before a complete response"
            case .timedOut: return "timed out with the connection open"
            case .malformed(let s): return "malformed: \(s)"
            }
        }

        public var response: RawResponse? {
            if case .response(let r) = self { return r }
            return nil
        }
    }

    public static func readOutcome(_ client: RawClient, headRequest: Bool = false, discardBody: Bool = false, bodyCount: UnsafeMutablePointer<Int>? = nil) -> Outcome {
        do {
            return .response(try client.readResponse(headRequest: headRequest, discardBody: discardBody, bodyCount: bodyCount))
        } catch RawClientError.timeout {
            return .timedOut
        } catch RawClientError.malformed(let text) {
            return .malformed(text)
        } catch {
            return .closedEarly
        }
    }

    /// The `path` field of the JSON body the recording upstream answers with.
    public static func echoedPath(_ response: RawResponse) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else { return nil }
        return object["path"] as? String
    }

    /// The `detail` field of a JSON error body Gatehouse wrote itself.
    public static func errorDetail(_ response: RawResponse) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else { return nil }
        return object["detail"] as? String
    }

    public static func occurrences(of needle: String, in haystack: [UInt8]) -> Int {
        let n = Array(needle.utf8)
        guard !n.isEmpty, haystack.count >= n.count else { return 0 }
        var count = 0
        var i = 0
        while i <= haystack.count - n.count {
            if haystack[i] == n[0] && Array(haystack[i..<(i + n.count)]) == n {
                count += 1
                i += n.count
            } else {
                i += 1
            }
        }
        return count
    }

    // MARK: Waiting

    /// Like ``ProxyFixture/eventually(seconds:_:)`` but suspends between polls instead of
    /// blocking the thread, for tests that run a concurrent task meanwhile.
    public static func eventually(seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return condition()
    }

    /// Sends `bytes` on `fd` from a separate thread, so the test can read at the same time.
    public final class BackgroundSend: @unchecked Sendable {
        // @unchecked: `failed` is written once before `done` is signalled and read after.
        private let done = DispatchSemaphore(value: 0)
        private var failed = false

        public init(fd: Int32, bytes: [UInt8]) {
            Thread.detachNewThread { [self] in
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 {
                        self.failed = true
                        break
                    }
                    offset += n
                }
                self.done.signal()
            }
        }

        /// Waits for the send to end; true when every byte was sent.
        public func finished(within seconds: Int = 10) -> Bool {
            guard done.wait(timeout: .now() + .seconds(seconds)) == .success else { return false }
            return !failed
        }
    }
}
