// swift-tools-version:6.1
// Micro-benchmarks, kept apart from the main package so that building and testing the
// library never builds the benchmark harness. Run: `swift package --package-path Benchmarks benchmark`.
import PackageDescription

let package = Package(
    name: "SessionClusterBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-session-cluster", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "SessionBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SessionCore", package: "swift-session-cluster"),
                .product(name: "ClusterProtocol", package: "swift-session-cluster"),
                .product(name: "WireFormat", package: "swift-session-cluster"),
            ],
            path: "Benchmarks/SessionBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
