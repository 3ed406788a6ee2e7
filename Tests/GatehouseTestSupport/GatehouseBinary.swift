import Foundation
import XCTest

/// Finds the `gatehouse` executable that `swift test` built beside the test bundle.
public enum GatehouseBinary {
    /// `<package root>/.build/debug/gatehouse`. The package root is three levels above this file
    /// (Tests/GatehouseTestSupport/GatehouseBinary.swift); the test bundle's own directory is
    /// tried first, since it is the build directory the tests were built into.
    public static func path(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        var candidates: [String] = []
        if let bundleDir = Bundle.main.executableURL?.deletingLastPathComponent() {
            candidates.append(bundleDir.appendingPathComponent("gatehouse").path)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/gatehouse").path)
        for path in candidates {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                FileManager.default.isExecutableFile(atPath: path)
            {
                return path
            }
        }
        XCTFail("the gatehouse binary was not found (looked at \(candidates)); run `swift build` first", file: file, line: line)
        throw CocoaError(.fileNoSuchFile)
    }
}

extension GatehouseBinary {
    /// Runs the binary to completion with `stdin` as its input; stdout and stderr together.
    public static func run(_ arguments: [String], stdin: String = "", environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try path())
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Reads a pipe to its end on its own thread, so two pipes of one child can be drained at once.
public final class PipeDrain: @unchecked Sendable {
    // @unchecked: `data` is written once before `done` is signalled and read only after it.
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    public init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            self.data = handle.readDataToEndOfFile()
            self.done.signal()
        }
    }

    public func wait() -> Data {
        done.wait()
        return data
    }
}
