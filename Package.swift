// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Alexandria",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "alexandria", targets: ["alexandria"]),
        .library(name: "AlexandriaCore", targets: ["AlexandriaCore"]),
        .library(name: "AlexandriaStore", targets: ["AlexandriaStore"]),
        .library(name: "AlexandriaHome", targets: ["AlexandriaHome"]),
        .library(name: "AlexandriaManifest", targets: ["AlexandriaManifest"]),
        .library(name: "AlexandriaObjectStore", targets: ["AlexandriaObjectStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // A node's metrics: their names and help in one place, recorded through swift-metrics, exported by
        // swift-prometheus (`/metrics` on the gateway). Depends on nothing of ours, so any module can record.
        .target(
            name: "AlexandriaMetrics",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // System libraries from Debian's -dev packages (libzstd-dev, libsqlite3-dev).
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // SHA-256 with SHA-NI, one stream or two interleaved on one core (portable C fallback).
        .target(name: "CSHA256x2"),
        // Pure values: content hashes, the chunker, Merkle trees and proofs, named limits.
        .target(
            name: "AlexandriaCore",
            dependencies: ["CSHA256x2", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The chunk store on disk: pack files, the SQLite index, ingest, verified reads, scrub, GC.
        .target(
            name: "AlexandriaStore",
            dependencies: ["AlexandriaCore", "AlexandriaMetrics", "CZstd", "CSQLite"]
        ),
        // S3-compatible object storage: SigV4, a NIOHTTP1 client, the write lease (Protocol/store-s3.md).
        .target(
            name: "AlexandriaObjectStore",
            dependencies: [
                "AlexandriaCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The store's packs in a bucket: AlexandriaStore's `RemotePacks` over AlexandriaObjectStore, upload of sealed
        // packs, GC of the bucket, rebuild of the index from the bucket (Protocol/store-s3.md).
        .target(
            name: "AlexandriaStoreS3",
            dependencies: [
                "AlexandriaCore", "AlexandriaStore", "AlexandriaObjectStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Holds the write lease on a bucket prefix until killed (tests kill -9 it), or shows who holds it.
        .executableTarget(
            name: "alexandria-s3-lease",
            dependencies: ["AlexandriaObjectStore"]
        ),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Manifests, DSSE envelopes, publisher keys and logs, checkpoints, equivocation proofs: values, no I/O.
        .target(
            name: "AlexandriaManifest",
            dependencies: ["AlexandriaCore", "COpenSSL", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // What a node knows about releases: publishers, logs, manifests, checkpoints, bindings, equivocations.
        .target(
            name: "AlexandriaCatalog",
            dependencies: ["AlexandriaCore", "AlexandriaManifest", "AlexandriaStore", "AlexandriaGossip"]
        ),
        // Gossip v1 values: catalog items, witness cosignatures, availability and demand statements, set
        // reconciliation (Protocol/gossip-v1.md). No I/O.
        .target(
            name: "AlexandriaGossip",
            dependencies: ["AlexandriaCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Wire protocol v1: frames and messages (Protocol/wire-v1.md). Codecs only, no sockets.
        .target(
            name: "AlexandriaWire",
            dependencies: ["AlexandriaCore", "AlexandriaGossip", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // The node: handshake, serving by hash, multi-peer fetch, the daemon.
        .target(
            name: "AlexandriaPeer",
            dependencies: [
                "AlexandriaCore", "AlexandriaStore", "AlexandriaManifest", "AlexandriaCatalog", "AlexandriaWire",
                "AlexandriaGossip", "AlexandriaMetrics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // A deterministic simulator of whole networks on the real gossip core: simulated time and network, faults,
        // invariants checked after every step, replay from a seed.
        .target(
            name: "AlexandriaSim",
            dependencies: [
                "AlexandriaCore", "AlexandriaGossip", "AlexandriaCatalog", "AlexandriaWire", "AlexandriaPeer",
            ]
        ),
        .executableTarget(name: "alexandria-sim", dependencies: ["AlexandriaSim"]),
        // The HTTP gateway: files by hash, the Hugging Face Hub API, OCI/ModelPack pulls (Protocol/gateway-v1.md).
        // Read-only, on NIOHTTP1 directly (already in the graph through swift-nio).
        .target(
            name: "AlexandriaGateway",
            dependencies: [
                "AlexandriaCore", "AlexandriaStore", "AlexandriaManifest", "AlexandriaCatalog", "AlexandriaPeer",
                "AlexandriaMetrics",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // A node's home directory: layout, config.toml (TOMLKit: toml++), node identity key, and the one mapping
        // from config.toml to the node's settings, the gateway's included (defaults from the settings types
        // themselves).
        .target(
            name: "AlexandriaHome",
            dependencies: [
                "AlexandriaCore", "AlexandriaStore", "AlexandriaManifest", "AlexandriaCatalog", "AlexandriaStoreS3",
                "AlexandriaPeer", "AlexandriaGateway",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        // The `alexandria` command line: a thin shell over the modules above.
        .executableTarget(
            name: "alexandria",
            dependencies: [
                "AlexandriaCore",
                "AlexandriaStore",
                "AlexandriaHome",
                "AlexandriaManifest",
                "AlexandriaCatalog",
                "AlexandriaPeer",
                "AlexandriaWire",
                "AlexandriaGateway",
                "AlexandriaStoreS3",
                "AlexandriaObjectStore",
                "AlexandriaMetrics",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(
            name: "AlexandriaCoreTests",
            dependencies: ["AlexandriaCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "AlexandriaStoreTests",
            dependencies: ["AlexandriaCore", "AlexandriaStore"]
        ),
        // Unit tests, plus integration tests against a real engine when S3_ENDPOINT is set (Tests/s3.sh).
        .testTarget(
            name: "AlexandriaObjectStoreTests",
            dependencies: [
                "AlexandriaObjectStore", "alexandria-s3-lease",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "AlexandriaManifestTests",
            dependencies: [
                "AlexandriaCore", "AlexandriaManifest", "AlexandriaCatalog", "AlexandriaStore", "AlexandriaGossip",
            ]
        ),
        .testTarget(
            name: "AlexandriaWireTests",
            dependencies: [
                "AlexandriaCore", "AlexandriaWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "AlexandriaPeerTests",
            dependencies: [
                "AlexandriaCore", "AlexandriaStore", "AlexandriaWire", "AlexandriaPeer", "AlexandriaCatalog",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "AlexandriaGossipTests",
            dependencies: [
                "AlexandriaCore", "AlexandriaGossip", "AlexandriaWire",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "AlexandriaSimTests",
            dependencies: ["AlexandriaSim", "AlexandriaPeer", "AlexandriaGossip"]
        ),
        .testTarget(
            name: "AlexandriaGatewayTests",
            dependencies: [
                "AlexandriaCore", "AlexandriaGateway", "AlexandriaMetrics", "AlexandriaCatalog", "AlexandriaStore",
                "AlexandriaManifest",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "AlexandriaHomeTests",
            dependencies: ["AlexandriaHome", "AlexandriaGateway"]
        ),
        // Runs the real `alexandria` binary as separate processes.
        .testTarget(
            name: "AlexandriaCLITests",
            dependencies: [
                "AlexandriaCore", "alexandria", "AlexandriaCatalog", "AlexandriaGossip", "AlexandriaWire",
                "AlexandriaObjectStore", "AlexandriaStore", "AlexandriaStoreS3", "AlexandriaHome",
                .product(name: "NIOCore", package: "swift-nio"),
                "AlexandriaManifest",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
)
