// What every libFuzzer target of Fuzz/ shares: its entry point and its seed writing.
import Foundation

/// libFuzzer's driver, linked in by `-sanitize=fuzzer`: what libFuzzer's own `main` calls.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The body of a target's entry point. SwiftPM links an executable's entry point under the
/// name `<module>_main` (and libFuzzer's `main` is then not used), so each target defines
///
///     @_cdecl("<module>_main")
///     public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
///         runFuzzer(argc, argv, testOneInput: ..., writeSeeds: ...)
///     }
///
/// With SESSION_CLUSTER_FUZZ_WRITE_SEEDS=<directory> in the environment (scripts/fuzz.sh
/// --seeds), it calls `writeSeeds` with that directory, created, instead of fuzzing.
public func runFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt,
    writeSeeds: ((URL) throws -> Void)? = nil
) -> CInt {
    if let writeSeeds, let directory = ProcessInfo.processInfo.environment["SESSION_CLUSTER_FUZZ_WRITE_SEEDS"] {
        do {
            let output = URL(fileURLWithPath: directory)
            try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
            try writeSeeds(output)
            return 0
        } catch {
            print("writing the seeds to \(directory) failed: \(error)")
            return 1
        }
    }
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv, testOneInput)
}

/// A directory of the repository's Fixtures (the targets' seeds are made from them).
public func fixtures(_ name: String, file: String = #filePath) -> URL {
    URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("../../Fixtures/\(name)").standardized
}
