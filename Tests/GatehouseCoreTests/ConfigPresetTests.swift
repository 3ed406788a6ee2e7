import Foundation
import GatehouseCore
import XCTest

/// `preset:` sets defaults that the rest of the file overrides; its rules decide last.
extension ConfigLoaderTests {
    func testPresetOctoPrintSetsItsDefaultsAndTheFileOverridesThem() throws {
        let octoprint = try ConfigLoader.parse(yaml: "preset: octoprint\n")
        XCTAssertEqual(octoprint.preset, .octoprint)
        XCTAssertTrue(octoprint.octoPrintCSRF)
        XCTAssertTrue(octoprint.octoPrintAppKeys)
        XCTAssertTrue(octoprint.forwardClientAddress)
        XCTAssertEqual(octoprint.identityHeaders.user, "X-Remote-User")
        let policy = octoprint.accessPolicy
        XCTAssertEqual(policy.rule(method: "GET", host: nil, path: "/api/files")?.rule.queryCredentials, [.apiKey])
        XCTAssertNil(policy.rule(method: "GET", host: nil, path: "/"), "the UI's pages take no ?apikey=")
        // Placed anywhere in the file, the preset still yields to the file's own values.
        let overridden = try ConfigLoader.parse(yaml: "octoprint_csrf: false\nidentity_headers: {user: X-User}\npreset: octoprint\n")
        XCTAssertFalse(overridden.octoPrintCSRF)
        XCTAssertEqual(overridden.identityHeaders.user, "X-User")
        XCTAssertTrue(overridden.octoPrintAppKeys)
    }

    func testPresetRulesComeAfterTheFilesRulesAndPublicPaths() throws {
        let config = try ConfigLoader.parse(yaml: "preset: octoprint\naccess_rules:\n  - {prefix: /api/admin, access: deny}\npublic_paths: [/api/version]\n")
        let policy = config.accessPolicy
        XCTAssertEqual(policy.decide(method: "GET", host: nil, path: "/api/admin/x").1, .deny)
        XCTAssertEqual(policy.decide(method: "GET", host: nil, path: "/api/version").1, .open)
        XCTAssertEqual(policy.decide(method: "GET", host: nil, path: "/api/job").1, .authenticated)
    }

    func testPresetMoonrakerAndMjpgStreamer() throws {
        let moonraker = try ConfigLoader.parse(yaml: "preset: moonraker\n")
        XCTAssertFalse(moonraker.forwardClientAddress)
        XCTAssertTrue(moonraker.moonrakerOneshot)
        XCTAssertEqual(moonraker.accessPolicy.decide(method: "GET", host: nil, path: "/access/api_key").1, .deny, "Moonraker's own key would open it without Gatehouse")
        XCTAssertEqual(moonraker.accessPolicy.decide(method: "POST", host: nil, path: "/server/jsonrpc").1, .deny, "JSON-RPC over HTTP would pass every path rule")
        XCTAssertEqual(moonraker.accessPolicy.decide(method: "GET", host: nil, path: "/websocket").1, .authenticated)
        XCTAssertFalse(moonraker.octoPrintCSRF)
        XCTAssertTrue(try ConfigLoader.parse(yaml: "preset: moonraker\nforward_client_address: true\n").forwardClientAddress)
        let camera = try ConfigLoader.parse(yaml: "preset: mjpg-streamer\n")
        XCTAssertEqual(camera.accessPolicy.rule(method: "GET", host: nil, path: "/")?.rule.queryCredentials, [.apiKey])
        XCTAssertEqual(camera.accessPolicy.decide(method: "GET", host: nil, path: "/").1, .authenticated, "a preset never makes anything public")
    }

    func testPresetMistakesNameKeyAndLine() {
        assertError("listen: 0.0.0.0:8080\npreset: klipper\n", line: 2, keyPath: "preset", messageContains: "expected one of octoprint, moonraker, mjpg-streamer")
        assertError("forward_client_address: maybe\n", line: 1, keyPath: "forward_client_address", messageContains: "expected true or false")
        assertError("moonraker_oneshot: 1\n", line: 1, keyPath: "moonraker_oneshot", messageContains: "expected true or false")
        assertError("octoprint_appkeys: []\n", line: 1, keyPath: "octoprint_appkeys", messageContains: "expected true or false")
    }
}
