import NIOCore
import NIOHTTP1

/// The whole of the plain-HTTP listener that `tls.redirect_http` opens: every request is
/// answered with `308 Permanent Redirect` to the same path on the HTTPS listener.
///
/// Guarantees: nothing is ever forwarded or authenticated here, and no body is read; the
/// connection is closed after the answer. The `Host` the client sent (its port dropped) names
/// the target, so it must be a plain host name or IP literal — anything else gets 400, never a
/// `Location` built from arbitrary bytes. A target that is not an origin-form path redirects to `/`.
final class HTTPSRedirectHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The HTTPS listener's port (left out of the `Location` when it is 443).
    private let httpsPort: Int
    private var answered = false

    init(httpsPort: Int) {
        self.httpsPort = httpsPort
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !answered else { return }
        answered = true
        var headers = HTTPHeaders([("Content-Length", "0"), ("Connection", "close"), ("Cache-Control", "no-store")])
        let status: HTTPResponseStatus
        let hosts = head.headers["host"]
        if hosts.count == 1, let location = Self.location(host: hosts[0], target: head.uri, httpsPort: httpsPort) {
            status = .permanentRedirect
            headers.add(name: "Location", value: location)
        } else {
            status = .badRequest
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// `https://host[:port]/target`, or nil when `host` is not a plain name or IP literal.
    static func location(host: String, target: String, httpsPort: Int) -> String? {
        guard let name = hostName(host) else { return nil }
        let port = httpsPort == 443 ? "" : ":\(httpsPort)"
        let path = target.hasPrefix("/") && !target.hasPrefix("//") ? target : "/"
        return "https://\(name)\(port)\(path)"
    }

    /// The host part of a `Host` header value (`name`, `name:port`, `[v6]`, `[v6]:port`), or
    /// nil when it holds anything but letters, digits, `.`, `-` (and, bracketed, hex and `:`).
    static func hostName(_ value: String) -> String? {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { return nil }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        func isNameByte(_ b: UInt8) -> Bool {
            isDigit(b) || (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == 0x2E || b == 0x2D
        }
        var name: ArraySlice<UInt8>
        var rest: ArraySlice<UInt8>
        if bytes[0] == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            name = bytes[...close]
            rest = bytes[(close + 1)...]
            guard name.dropFirst().dropLast().allSatisfy({ isDigit($0) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) || $0 == 0x3A || $0 == 0x2E }),
                name.count > 2
            else { return nil }
        } else {
            let colon = bytes.firstIndex(of: UInt8(ascii: ":")) ?? bytes.endIndex
            name = bytes[..<colon]
            rest = bytes[colon...]
            guard !name.isEmpty, name.allSatisfy(isNameByte) else { return nil }
        }
        if !rest.isEmpty {
            guard rest.first == UInt8(ascii: ":"), rest.count <= 6, rest.dropFirst().allSatisfy(isDigit) else { return nil }
        }
        return String(decoding: name, as: UTF8.self)
    }
}
