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

    /// The JSON answer for any refusal (``ErrorReply`` decides its headers).
    static func reply(_ reply: ErrorReply, allocator: ByteBufferAllocator) -> GatehouseResponse {
        var response = json(HTTPResponseStatus(statusCode: reply.status), detail: reply.detail, allocator: allocator)
        for field in reply.headers { response.headers.add(name: field.name, value: field.value) }
        return response
    }
}

extension GatehouseResponse {
    /// Head and body in one buffer, with its exact `Content-Length`, `Cache-Control: no-store`,
    /// and `Connection: close` (or `keep-alive` for HTTP/1.0) as the exchange needs.
    func serialized(versionMinor: Int, close: Bool, headRequest: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256 + body.readableBytes)
        HeadWriter.statusLine(versionMinor: versionMinor, status: Int(status.code), reason: nil, into: &buffer)
        for header in headers { HeadWriter.field(header.name, header.value, into: &buffer) }
        HeadWriter.field("Content-Length", String(body.readableBytes), into: &buffer)
        buffer.writeStaticString("Cache-Control: no-store\r\n")
        if close {
            buffer.writeStaticString("Connection: close\r\n")
        } else if versionMinor == 0 {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
        if !headRequest {
            var body = self.body
            buffer.writeBuffer(&body)
        }
        return buffer
    }
}
