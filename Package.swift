// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "swift-session-cluster",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SessionCluster", targets: ["SessionCluster"]),
        .library(name: "SessionClusterHummingbird", targets: ["SessionClusterHummingbird"]),
        .library(name: "SessionClusterVapor", targets: ["SessionClusterVapor"]),
        .executable(name: "session-node", targets: ["session-node"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    ],
    targets: [
        // liblz4 from the system (Debian: liblz4-dev).
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]
        ),
        // The session model and the in-memory store. No I/O, no clock: time is passed in.
        .target(name: "SessionCore"),
        // Sans-I/O cluster state machines: membership, election, partitions, replication.
        .target(name: "ClusterProtocol", dependencies: ["SessionCore"]),
        // Frames, LZ4 batches, HMAC authentication, limits.
        .target(
            name: "WireFormat",
            dependencies: [
                "SessionCore", "ClusterProtocol", "CLZ4",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Deterministic simulation of many nodes in one process (test support, first class).
        .target(name: "ClusterSimulator", dependencies: ["ClusterProtocol", "SessionCore", "WireFormat"]),
        // The embeddable runtime: NIO transport, timers, public API, metrics.
        .target(
            name: "SessionCluster",
            dependencies: [
                "SessionCore", "ClusterProtocol", "WireFormat",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // HMAC-SHA256 names principal index records.
                .product(name: "Crypto", package: "swift-crypto"),
                // Mutual TLS on peer links, and the names in a peer's certificate.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        .target(
            name: "SessionClusterHummingbird",
            dependencies: [
                "SessionCluster", "SessionCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Metrics", package: "swift-metrics"),
                // SHA-256 maps persist keys to session ids.
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "SessionClusterVapor",
            dependencies: [
                "SessionCluster", "SessionCore",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The options every node process takes: session-node serve and the examples.
        .target(
            name: "NodeCommandLine",
            dependencies: [
                "SessionCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // `session-node certs`: a development authority and node certificates.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Starts and stops `session-node serve` processes by PID on 127.0.0.1: the demo's
        // and the failover benchmark's cluster.
        .target(name: "NodeProcesses"),
        // The shipped binary: `serve` runs a node, `demo` a local cluster behind nginx.
        .executableTarget(
            name: "session-node",
            dependencies: [
                "SessionCluster", "SessionClusterHummingbird", "NodeCommandLine", "NodeProcesses",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The benchmark harness (`make bench`): figures side by side with Redis.
        .executableTarget(
            name: "session-bench",
            dependencies: [
                "SessionCluster", "SessionCore", "ClusterProtocol", "NodeProcesses", "NodeCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The examples of the README: `make example-hummingbird`, `make example-vapor`.
        .executableTarget(
            name: "hummingbird-shop",
            dependencies: [
                "SessionCluster", "SessionClusterHummingbird", "NodeCommandLine",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/HummingbirdShop"
        ),
        .executableTarget(
            name: "vapor-shop",
            dependencies: [
                "SessionCluster", "SessionClusterVapor", "NodeCommandLine",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/VaporShop"
        ),
        .testTarget(name: "SessionCoreTests", dependencies: ["SessionCore"]),
        .testTarget(name: "ClusterProtocolTests", dependencies: ["ClusterProtocol", "ClusterSimulator", "SessionCore"]),
        .testTarget(
            name: "WireFormatTests",
            dependencies: ["WireFormat", "ClusterProtocol", "SessionCore", .product(name: "Crypto", package: "swift-crypto")], resources: []),
        .testTarget(
            name: "SessionClusterTests",
            dependencies: [
                "SessionCluster", "WireFormat", "SessionCore", "NodeCommandLine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // One- and two-node clusters on 127.0.0.1 for the integrations' tests.
        .target(name: "ClusterTestSupport", dependencies: ["SessionCluster"], path: "Tests/ClusterTestSupport"),
        .testTarget(
            name: "SessionClusterHummingbirdTests",
            dependencies: [
                "SessionClusterHummingbird", "SessionCluster", "SessionCore", "ClusterTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
            ]
        ),
        // `session-node serve`'s options, and the binary itself started as a process.
        .testTarget(
            name: "SessionNodeTests",
            dependencies: ["NodeCommandLine", "NodeProcesses", "SessionCluster", "session-node"]
        ),
        .testTarget(
            name: "SessionClusterVaporTests",
            dependencies: [
                "SessionClusterVapor", "SessionCluster", "SessionCore", "ClusterTestSupport",
                .product(name: "VaporTesting", package: "vapor"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Micro-benchmarks (ordo-one/benchmark), only when asked for, so that building and testing
// the library never builds the benchmark harness:
//     SESSION_CLUSTER_BENCHMARKS=1 swift package benchmark
// They live in this package so that they reach the modules' `package` declarations.
if Context.environment["SESSION_CLUSTER_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]))
    package.targets.append(
        .executableTarget(
            name: "SessionBenchmarks",
            dependencies: [
                "SessionCore", "ClusterProtocol", "WireFormat",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SessionBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ))
}

// libFuzzer targets (`make fuzz`, scripts/fuzz.sh), only when asked for: they need the
// fuzzer sanitizer, which scripts/fuzz.sh passes to every module of its own build
// (`.build-fuzz`):
//     SESSION_CLUSTER_FUZZ=1 swift build --build-path .build-fuzz -Xswiftc -sanitize=fuzzer,address ...
// They live in this package so that they reach the modules' `package` declarations.
if Context.environment["SESSION_CLUSTER_FUZZ"] != nil {
    // No top-level code: each harness's entry point hands over to libFuzzer (FuzzSupport).
    let harness: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    package.targets += [
        // The entry point every target shares, and its seed writing.
        .target(name: "FuzzSupport", path: "Fuzz/Support"),
        // Any bytes into the frame decoder: header checks, framing, authentication.
        .executableTarget(
            name: "FuzzFrameDecoder", dependencies: ["FuzzSupport", "WireFormat", "ClusterProtocol"],
            path: "Fuzz/FrameDecoder", swiftSettings: harness),
        // Frames the harness authenticates: decompression, link history, bodies, bundles.
        .executableTarget(
            name: "FuzzAuthenticatedFrames",
            dependencies: ["FuzzSupport", "WireFormat", "ClusterProtocol", .product(name: "Crypto", package: "swift-crypto")],
            path: "Fuzz/AuthenticatedFrames", swiftSettings: harness),
        // BinarySessionSerializer's decoder, into open and typed values.
        .executableTarget(
            name: "FuzzBinarySerializer", dependencies: ["FuzzSupport", "SessionCore"],
            path: "Fuzz/BinarySerializer", swiftSettings: harness),
        // The session cookie and the routes' path parameters, as the Hummingbird
        // integration reads them.
        .executableTarget(
            name: "FuzzHTTPInputs",
            dependencies: [
                "FuzzSupport", "SessionCore", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
            ],
            path: "Fuzz/HTTPInputs", swiftSettings: harness),
    ]
}
