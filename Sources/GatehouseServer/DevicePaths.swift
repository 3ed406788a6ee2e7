import Foundation
import GatehouseCore

/// Which paths of the device's own API Gatehouse answers itself.
///
/// Guarantees: a claimed path never reaches the device; nothing is claimed unless its setting
/// is on; the claim is by exact path or whole segments, on the normalized path.
public struct DevicePaths: Sendable {
    /// Moonraker's `GET /access/oneshot_token`.
    public let moonrakerOneshot: Bool
    /// OctoPrint's `/plugin/appkeys/...` pairing.
    public let octoPrintAppKeys: Bool

    public static let moonrakerOneshotPath = "/access/oneshot_token"
    public static let appKeysPrefix = "/plugin/appkeys"

    public init(moonrakerOneshot: Bool, octoPrintAppKeys: Bool) {
        self.moonrakerOneshot = moonrakerOneshot
        self.octoPrintAppKeys = octoPrintAppKeys
    }

    /// Whether Gatehouse answers `path` (normalized) itself.
    public func claims(_ path: String) -> Bool {
        (moonrakerOneshot && path.bytesEqual(Self.moonrakerOneshotPath))
            || (octoPrintAppKeys && PathBytes.isUnder(path, prefix: Self.appKeysPrefix))
    }

    /// `path` for the access log: under `/plugin/appkeys/` only the first segment is kept
    /// (`/plugin/appkeys/request/…`), since the next one is a pairing token — Gatehouse's or,
    /// with the pairing left to OctoPrint, OctoPrint's. Whoever reads the log must not be able to
    /// collect a key with it.
    static func withoutTokens(_ path: String) -> String {
        guard PathBytes.isUnder(path, prefix: appKeysPrefix) else { return path }
        let rest = path.utf8.dropFirst(appKeysPrefix.utf8.count + 1)
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return path }
        return String(decoding: path.utf8[..<slash], as: UTF8.self) + "/…"
    }
}

extension OwnEndpoints {
    /// The answer to a claimed device path.
    func deviceEndpoint(_ request: OwnRequest, now: Date) async -> OwnResponse {
        if devicePaths.moonrakerOneshot && request.target.path.bytesEqual(DevicePaths.moonrakerOneshotPath) {
            return await moonrakerOneshot(request, now: now)
        }
        return await appKeysEndpoint(request, now: now)
    }

    /// Moonraker's one-shot token, in Moonraker's shape (`{"result": token}`), but a Gatehouse
    /// token: a client that opens `/websocket?token=…` with it is let through by Gatehouse
    /// (Moonraker ignores a `?token=` it does not know when the caller is a trusted client).
    private func moonrakerOneshot(_ request: OwnRequest, now: Date) async -> OwnResponse {
        guard request.method == "GET" else { return Self.moonrakerError(405, "Method not allowed") }
        do throws(AccountError) {
            let identity = try await caller(request, now: now)
            let token = try accounts.oneShotToken(for: identity, now: now)
            return .json(200, ["result": token])
        } catch {
            let status = OwnResponse.error(error).status
            return Self.moonrakerError(status, status == 401 ? "Unauthorized" : status == 403 ? "Forbidden" : "Unavailable")
        }
    }

    /// Moonraker's error body: `{"error": {"code": N, "message": "…"}}`.
    static func moonrakerError(_ status: Int, _ message: String) -> OwnResponse {
        .json(status, ["error": ["code": status, "message": message] as [String: any Sendable]])
    }
}
