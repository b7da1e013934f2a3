import Benchmark

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(maxDuration: .seconds(3), maxIterations: 1_000_000)
    storeBenchmarks()
    wireBenchmarks()
}
