/// `preset:` — defaults for the devices people put Gatehouse in front of. Every value a preset
/// sets is an ordinary setting, so the rest of the file overrides it; its access rules come
/// after the file's own rules and `public_paths`, so any rule in the file decides first.
///
/// Guarantees: a preset never makes anything public and never turns a check off; it only adds
/// ways for the device's own clients to present a Gatehouse credential and has Gatehouse answer
/// the device endpoints those clients use to get one.
public enum DevicePreset: String, Sendable, Hashable, CaseIterable {
    /// OctoPrint with `accessControl.trustRemoteUser` and `remoteUserHeader: X-Remote-User`.
    case octoprint
    /// Moonraker (Mainsail, Fluidd) with `trusted_clients` limited to Gatehouse's address.
    case moonraker
    /// mjpg-streamer (or another MJPEG camera server): stream URLs that carry their key.
    case mjpgStreamer = "mjpg-streamer"

    /// Sets this preset's defaults on a config that has not read the rest of the file yet.
    public func apply(to config: inout GatehouseConfig) {
        config.preset = self
        switch self {
        case .octoprint:
            config.identityHeaders = IdentityHeaderNames(user: "X-Remote-User", roles: "X-Remote-Roles", method: "X-Remote-Auth")
            // With trustRemoteUser OctoPrint wants its CSRF pair on every state-changing request
            // not made with one of its own keys (a slicer's upload).
            config.octoPrintCSRF = true
            config.octoPrintAppKeys = true
            config.presetRules = [
                // OctoPrint's clients put the key in ?apikey= (slicer upload URLs, timelapse
                // and file downloads); only on the API and downloads, never on the UI's pages.
                AccessRule(pattern: .prefix("/api"), decision: .authenticated, queryCredentials: [.apiKey]),
                AccessRule(pattern: .prefix("/downloads"), decision: .authenticated, queryCredentials: [.apiKey]),
            ]
        case .moonraker:
            // Moonraker reads X-Forwarded-For (its last entry) and X-Real-IP to decide whether a
            // caller is a trusted client: it must see Gatehouse's own address.
            config.forwardClientAddress = false
            config.moonrakerOneshot = true
            config.presetRules = [
                // Moonraker's own API key opens Moonraker to whoever reaches it without Gatehouse;
                // through Gatehouse every caller is its trusted client, a read-only key too.
                AccessRule(pattern: .prefix("/access/api_key"), decision: .deny),
                // JSON-RPC over HTTP names the method in the body, where no path rule can see it:
                // it would reach every endpoint the rules deny (`access.get_api_key` too).
                AccessRule(pattern: .prefix("/server/jsonrpc"), decision: .deny),
                // Moonraker's file downloads and webcam links that clients build with ?apikey=-like keys.
                AccessRule(pattern: .prefix("/server/files"), decision: .authenticated, queryCredentials: [.apiKey]),
            ]
        case .mjpgStreamer:
            // `/?action=stream` and `/?action=snapshot` are pasted into apps that take only a
            // URL (OctoPrint's webcam settings, phone apps): the key rides in ?apikey=.
            config.presetRules = [AccessRule(pattern: .prefix("/"), decision: .authenticated, queryCredentials: [.apiKey])]
        }
    }
}

extension DevicePreset {
    /// `preset:`.
    static func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> DevicePreset {
        guard let preset = DevicePreset(rawValue: try reader.string(value)) else {
            throw reader.fail(value, "expected one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return preset
    }
}
