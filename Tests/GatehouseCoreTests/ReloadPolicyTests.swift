import GatehouseCore
import XCTest

final class ReloadPolicyTests: XCTestCase {
    /// Every field of the config, with the fields of `timeouts`, `limits` and `tls` as dotted paths.
    private func fieldPaths() -> [String] {
        var config = GatehouseConfig()
        config.tls = ListenerTLSSettings(certificate: .selfSigned(directory: "."))
        var paths: [String] = []
        for child in Mirror(reflecting: config).children {
            guard let label = child.label else { continue }
            guard ReloadPolicy.classifiedByPart.contains(label) else {
                paths.append(label)
                continue
            }
            var value: Any = child.value
            // Unwrap an optional (tls) to reach its fields.
            if let inner = Mirror(reflecting: value).children.first, Mirror(reflecting: value).displayStyle == .optional { value = inner.value }
            paths.append(contentsOf: Mirror(reflecting: value).children.compactMap { $0.label.map { "\(label).\($0)" } })
        }
        return paths
    }

    func testEveryFieldIsEitherReloadableOrRestartBoundAndNeverBoth() {
        let bound = ReloadPolicy.restartBound.flatMap(\.fields)
        let reloadable = ReloadPolicy.reloadable
        let fields = fieldPaths()
        XCTAssertGreaterThan(fields.count, 40, "the walk found the config's fields")
        for field in fields {
            let places = bound.filter { $0 == field }.count + reloadable.filter { $0 == field }.count
            XCTAssertEqual(places, 1, "\(field) must be named exactly once in ReloadPolicy (restartBound or reloadable)")
        }
        // And nothing named that is not a field (a renamed field would leave a stale name).
        for name in bound + reloadable where name != "tls" {
            XCTAssertTrue(fields.contains(name), "\(name) is not a field of GatehouseConfig")
        }
    }

    func testARestartBoundChangeIsKeptAndNamedAReloadableOneApplied() {
        let old = GatehouseConfig()
        var new = old
        new.listen = ListenAddress(host: "127.0.0.1", port: 9999)
        new.auditLog = "off"
        new.timeouts.idle = .seconds(5)
        new.limits.maxBodyBytes = 1234
        new.accessLog = false
        let (applied, kept) = ReloadPolicy.apply(new, over: old)
        XCTAssertEqual(applied.listen, old.listen)
        XCTAssertEqual(applied.auditLog, "stdout")
        XCTAssertEqual(applied.timeouts.idle, old.timeouts.idle)
        XCTAssertEqual(applied.limits.maxBodyBytes, 1234)
        XCTAssertFalse(applied.accessLog)
        XCTAssertEqual(
            kept,
            [
                "listen changed; it takes effect after a restart", "audit_log changed; it takes effect after a restart",
                "timeouts.idle changed; it takes effect after a restart",
            ])
    }

    func testTLSOnOffIsRestartBoundNewCertificateFilesAreNot() {
        var old = GatehouseConfig()
        old.tls = ListenerTLSSettings(certificate: .files(certificate: "a.pem", key: "a.key"))
        var new = old
        new.tls?.certificate = .files(certificate: "b.pem", key: "b.key")
        XCTAssertEqual(ReloadPolicy.apply(new, over: old).kept, [])
        XCTAssertEqual(ReloadPolicy.apply(new, over: old).applied.tls, new.tls)
        new.tls = nil
        let (applied, kept) = ReloadPolicy.apply(new, over: old)
        XCTAssertEqual(kept, ["tls changed; it takes effect after a restart"])
        XCTAssertEqual(applied.tls, old.tls)
    }
}
