import GatehouseCore
import NIOCore
import NIOHTTP1

/// A response Gatehouse writes itself (errors, health): status, a few headers, a small body.
///
/// Guarantees: error bodies are JSON `{"detail": "..."}` with the detail escaped, so nothing the
/// client sent can break out of the string; every response carries its exact `Content-Length`
/// and `Cache-Control: no-store`.
struct GatehouseResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer

    static func json(_ status: HTTPResponseStatus, detail: String, allocator: ByteBufferAllocator) -> GatehouseResponse {
        var body = allocator.buffer(capacity: detail.utf8.count + 16)
        body.writeStaticString("{\"detail\": \"")
        body.writeString(JSONText.escaped(detail))
        body.writeStaticString("\"}\n")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        return GatehouseResponse(status: status, headers: headers, body: body)
    }

    static func text(_ status: HTTPResponseStatus, _ text: String, allocator: ByteBufferAllocator) -> GatehouseResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        return GatehouseResponse(status: status, headers: headers, body: allocator.buffer(string: text))
    }

    static func refusal(_ failure: AuthenticationFailure, allocator: ByteBufferAllocator) -> GatehouseResponse {
        var response = json(HTTPResponseStatus(statusCode: failure.status), detail: failure.detail, allocator: allocator)
        if failure.status == 401 {
            response.headers.add(name: "WWW-Authenticate", value: "Bearer realm=\"gatehouse\"")
        }
        if case .lockedOut(let seconds) = failure { response.headers.add(name: "Retry-After", value: String(seconds)) }
        return response
    }

    /// The head to write, framed for `version`, with `Connection: close` when `close`.
    func head(version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = self.headers
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        if close {
            headers.add(name: "Connection", value: "close")
        } else if version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: version, status: status, headers: headers)
    }
}
