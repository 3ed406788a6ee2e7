import GatehouseFuzzChecks

/// libFuzzer's entry point: a property violation traps, so the input is kept as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    if let problem = FuzzChecks.requestScanner(Array(UnsafeBufferPointer(start: data, count: count))) {
        fatalError(problem)
    }
    return 0
}
