// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for Gatehouse's parsers. A package of its own so that the main build and
// tests never link libFuzzer; build and run them with Fuzz/run.sh (see README, "Fuzzing").
let checks = Target.Dependency.product(name: "GatehouseFuzzChecks", package: "gatehouse")

let package = Package(
    name: "gatehouse-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "gatehouse", path: "..")],
    targets: [
        .executableTarget(name: "FuzzConfigLoader", dependencies: [checks]),
        .executableTarget(name: "FuzzPathNormalizer", dependencies: [checks]),
        .executableTarget(name: "FuzzCredentialParsers", dependencies: [checks]),
        .executableTarget(name: "FuzzJSONWebToken", dependencies: [checks]),
        .executableTarget(name: "FuzzResponseScanner", dependencies: [checks]),
        .executableTarget(name: "FuzzRequestScanner", dependencies: [checks]),
    ],
    swiftLanguageModes: [.v6]
)
