import Crypto
import Foundation

/// The RFC 6455 opening handshake's key and answer, checked on both sides of a tunnel.
///
/// Guarantees: a request's key is accepted only when it is present exactly once and decodes to
/// 16 bytes; a device's 101 is accepted as a WebSocket only when its `Upgrade` names exactly
/// `websocket` and its `Sec-WebSocket-Accept` is the one the key calls for. Anything else (a
/// device that switched to `h2c` or any other protocol) is not tunnelled.
public enum WebSocketHandshake {
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The request's `Sec-WebSocket-Key`, when there is exactly one and it is 16 bytes in base64.
    public static func key(in head: RequestHead) -> String? {
        guard head.count(.secWebSocketKey) == 1, let key = head.value(.secWebSocketKey) else { return nil }
        guard key.utf8.count == 24, let decoded = Data(base64Encoded: key), decoded.count == 16 else { return nil }
        return key
    }

    /// `Sec-WebSocket-Accept` for a key: base64 of SHA-1 over the key and RFC 6455's GUID.
    public static func accept(forKey key: String) -> String {
        Data(Insecure.SHA1.hash(data: Array((key + guid).utf8))).base64EncodedString()
    }

    /// Whether a device's 101 completes the handshake `key` began: `Upgrade: websocket` (and no
    /// other protocol) and the matching `Sec-WebSocket-Accept`, each exactly once.
    public static func accepts(response headers: [(name: String, value: String)], key: String) -> Bool {
        let upgrades = headers.filter { $0.name.equalsCaseInsensitive("upgrade") }
        guard upgrades.count == 1, upgrades[0].value.trimmingASCIIWhitespace().equalsCaseInsensitive("websocket") else { return false }
        let accepts = headers.filter { $0.name.equalsCaseInsensitive("sec-websocket-accept") }
        guard accepts.count == 1 else { return false }
        return accepts[0].value.trimmingASCIIWhitespace() == accept(forKey: key)
    }
}
