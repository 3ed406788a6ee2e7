import Foundation
import XCTest

@testable import GatehouseCore

/// Small builders shared by the GatehouseCore tests.
enum Fixture {
    static func ip(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> IPAddress {
        guard let address = IPAddress(text) else {
            XCTFail("'\(text)' should parse as an IP address", file: file, line: line)
            return IPAddress(bytes: [0, 0, 0, 0])!
        }
        return address
    }

    static func cidr(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> CIDR {
        do {
            return try CIDR(parsing: text)
        } catch {
            XCTFail("'\(text)' should parse as a CIDR block: \(error)", file: file, line: line)
            return try! CIDR(parsing: "0.0.0.0/0")
        }
    }

    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)!
    }

    static func plan(
        identity: Identity? = nil, consumed: CredentialSources = [], clientAddress: IPAddress? = nil,
        peerIsTrustedProxy: Bool = false
    ) -> ForwardPlan {
        ForwardPlan(identity: identity, consumed: consumed, clientAddress: clientAddress, peerIsTrustedProxy: peerIsTrustedProxy)
    }
}

/// The values of every header whose name equals `name` ASCII-case-insensitively.
func values(_ headers: [(name: String, value: String)], _ name: String) -> [String] {
    headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
}

/// The headers whose name equals `name` after lowercasing and folding `_` into `-`.
func foldedMatches(_ headers: [(name: String, value: String)], _ name: String) -> [(name: String, value: String)] {
    func fold(_ s: String) -> String { s.lowercased().replacingOccurrences(of: "_", with: "-") }
    return headers.filter { fold($0.name) == fold(name) }
}

extension Fixture {
    /// A request head with these header lines, written out and scanned like a received one:
    /// HTTP/1.1 when a `Host` is among them, else HTTP/1.0 (which needs none).
    static func head(
        _ headers: [(name: String, value: String)], method: String = "GET", uri: String = "/", file: StaticString = #filePath, line: UInt = #line
    ) -> RequestHead {
        let hasHost = headers.contains { $0.name.lowercased() == "host" }
        do {
            return try RequestHead(method: method, uri: uri, versionMinor: hasHost ? 1 : 0, headers: headers)
        } catch {
            XCTFail("not a request head (\(error)): \(headers)", file: file, line: line)
            return try! RequestHead(method: "GET", uri: "/", versionMinor: 0, headers: [])
        }
    }
}
