import Foundation
import GatehouseCore

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
            let token = try await accounts.oneShotToken(for: identity, now: now)
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
