import GatehouseCore
import GatehouseTestSupport
import XCTest

/// A client trying to tell the device who it is or where it came from: the device sees exactly
/// one value of each identity header, Gatehouse's, and no forwarding header the client wrote.
final class SpoofingAttackTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"

    func testIdentityHeadersInEverySpelling() async throws {
        var attacks: [Attack] = []
        for header in ["X-Remote-User", "X-Remote-Roles", "X-Remote-Auth"] {
            let lower = header.lowercased()
            let spellings = [
                header, lower, header.uppercased(), header.replacingOccurrences(of: "-", with: "_"),
                lower.replacingOccurrences(of: "-", with: "_"), lower.replacingOccurrences(of: "x-", with: "x_"),
            ]
            for spelling in spellings {
                attacks.append(.request("\(spelling) from the client", "/api/job", headers: [key, "\(spelling): mallory"],
                    .forwarded(status: 200, check: Saw.noHeaderMentioning("mallory"))))
            }
            attacks.append(.request("\(header) twice", "/api/job", headers: [key, "\(header): mallory", "\(header): mallory2"],
                .forwarded(status: 200, check: Saw.noHeaderMentioning("mallory"))))
            attacks.append(.request("\(header) with a comma list", "/api/job", headers: [key, "\(header): mallory, admin"],
                .forwarded(status: 200, check: Saw.noHeaderMentioning("mallory"))))
        }
        attacks.append(.request("spoofed user without any credential", "/api/job", headers: ["X-Remote-User: admin"], .refused(401)))
        // A Connection header that would delete a header Gatehouse sets is a malformed request.
        attacks.append(.request("hop-by-hop trick: Connection names X-Remote-User", "/api/job",
            headers: [key, "Connection: X-Remote-User, close"], .refused(400)))
        attacks.append(.request("hop-by-hop trick: Connection names X-Remote-Roles", "/api/job",
            headers: [key, "Connection: x-remote-roles"], .refused(400)))
        attacks.append(.request("hop-by-hop trick: Connection names X-Api-Key", "/api/job",
            headers: [key, "Connection: X-Api-Key"], .forwarded(status: 200, check: Saw.identity("alice"))))
        try await ProxyFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testForwardingHeadersFromAnUntrustedPeer() async throws {
        let attacks: [Attack] = [
            .request("X-Forwarded-For", "/api/job", headers: [key, "X-Forwarded-For: 10.9.9.9"],
                .forwarded(status: 200, check: { r in r.values("X-Forwarded-For") == ["127.0.0.1"] ? nil : "XFF \(r.values("X-Forwarded-For"))" })),
            .request("X-Forwarded-Proto", "/api/job", headers: [key, "X-Forwarded-Proto: https"],
                .forwarded(status: 200, check: { r in r.values("X-Forwarded-Proto") == ["http"] ? nil : "XFP \(r.values("X-Forwarded-Proto"))" })),
            .request("X-Forwarded-Host", "/api/job", headers: [key, "X-Forwarded-Host: evil.example"],
                .forwarded(status: 200, check: Saw.noHeaderMentioning("evil.example"))),
            .request("Forwarded", "/api/job", headers: [key, "Forwarded: for=10.9.9.9;proto=https;host=evil.example"],
                .forwarded(status: 200, check: Saw.noHeaderMentioning("10.9.9.9"))),
            .request("X-Real-IP", "/api/job", headers: [key, "X-Real-IP: 10.9.9.9"],
                .forwarded(status: 200, check: Saw.noHeaderMentioning("10.9.9.9"))),
            .request("X-Forwarded-For from a trusted network's address, untrusted peer", "/api/job", headers: ["X-Forwarded-For: 192.168.50.7"],
                .refused(401)),
        ]
        try await ProxyFixture.with({ config in
            config.trustedNetworks = [TrustedNetwork(cidr: AuthTest.cidr("192.168.50.0/24"), user: "lan", roles: ["viewer"])]
        }) { fx in try await launch(attacks, on: fx) }
    }
}
