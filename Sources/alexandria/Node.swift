import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGateway
import AlexandriaHome
import AlexandriaManifest
import AlexandriaMetrics
import AlexandriaPeer
import AlexandriaStore
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run this home as a node.", subcommands: [Run.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The mirror daemon: gossip, replication, witnessing, and serving by hash to authenticated peers.",
            discussion: """
                It joins the network through its bootstrap peers (one is enough: peer exchange finds the rest), learns \
                and passes on the whole catalog (manifests, log entries, checkpoints, equivocation proofs, witness \
                cosignatures, availability), keeps the releases its [mirror] policy asks for within its budget, \
                cosigns the checkpoints of releases it holds, and serves chunks by hash. SIGTERM or SIGINT stops it \
                gracefully. Flags override config.toml. `alexandria fetch` and `publish` on the same home write to \
                the same store and catalog, so what they bring in is served and gossiped from then on.
                """)
        @OptionGroup var options: HomeOptions
        @Option(help: "HOST:PORT to listen on (default from config, 127.0.0.1:7420).") var listen: String?
        @Option(help: "A peer HOST:PORT (repeatable; adds to config).") var peer: [String] = []
        @OptionGroup var log: LogOptions
        @Option(help: "Upload limit for all peers together, e.g. 50MiB (per second).") var uploadRate: String?
        @Flag(help: "Serve and gossip only; keep no releases beyond what is already held.") var noMirror = false
        @Option(
            help: "HOST:PORT for the read-only HTTP gateway (by hash, Hugging Face, OCI); default from config, off.")
        var http: String?

        func run() async throws {
            let home = options.resolved
            try home.checkWritable()
            let config = try home.config()
            let address = listen ?? config.listen
            guard let parsed = PeerAddress(parsing: address) else {
                throw CommandFailure(message: "--listen takes HOST:PORT, not \(address)", exitCode: 2)
            }
            log.bootstrap()
            // Before any metric is recorded: the one place this process bootstraps swift-metrics.
            let metrics = NodeMetrics.bootstrap()
            let logger = Logger(label: "alexandria.node")
            // One daemon per home: two would share a node id, a store and a catalog. Held until run() returns.
            let nodeLock = try NodeLock(home: home)
            defer { withExtendedLifetime(nodeLock) {} }
            Self.checkDescriptors(home: home, config: config, logger: logger)
            let store = try home.openStore()
            let catalog = try home.openCatalog()
            let identity = NodeIdentity(key: try home.nodeKey())
            let server = PeerServer(
                store: store, catalog: catalog, identity: identity, host: parsed.host, port: parsed.port, logger: logger
            )
            var bootstrap: [PeerAddress] = []
            for text in peer + config.peers {
                guard let p = PeerAddress(parsing: text) else {
                    throw CommandFailure(message: "not HOST:PORT: \(text)", exitCode: 2)
                }
                if !bootstrap.contains(p) { bootstrap.append(p) }
            }
            let settings = config.gossipSettings(home: home)
            server.clientLimits = config.clientLimits
            if let idle = config.testIdleTimeoutSeconds { server.idleTimeoutSeconds = idle }
            let gossip = GossipNode(
                catalog: catalog, identity: identity, bootstrap: bootstrap, settings: settings,
                logger: Logger(label: "alexandria.gossip"))
            server.gossip = gossip
            let policy = config.mirrorPolicy(home: home, pinnedOnly: noMirror)
            let mirror = Mirror(
                store: store, catalog: catalog, identity: identity, gossip: gossip, policy: policy,
                logger: Logger(label: "alexandria.mirror"))
            if let uploadRate {
                guard let bytes = ByteSize.parse(uploadRate), bytes > 0 else {
                    throw CommandFailure(message: "--upload-rate takes a size per second such as 50MiB", exitCode: 2)
                }
                server.uploadBytesPerSecond = Double(bytes)
            }
            // Shut down in reverse: the gateway, the mirror, gossip (its links close), then the server.
            var services: [any Service] = [
                server, GossipService(node: gossip, server: server), MirrorService(mirror: mirror),
            ]
            if let s3 = try home.objectStore() {
                // One writer per prefix: refuse to start while another node's lease is live.
                let lease = s3.lease(holder: try ObjectStorage.holder(home))
                try await s3.checkAccess()
                try await lease.acquire()
                services.append(
                    ObjectStorageService(s3: s3, store: store, lease: lease, logger: Logger(label: "alexandria.s3")))
            }
            if let gateway = try gateway(
                config: config, store: store, catalog: catalog, identity: identity, gossip: gossip, policy: policy,
                scratch: home.path)
            {
                gateway.routes.insert(
                    MetricsRoutes.node(registry: metrics, store: store, catalog: catalog, gossip: gossip), at: 0)
                // Pull-through fetches stop after the gateway does (reverse order), cancelled with their group.
                if let pullThrough = gateway.pullThrough { services.append(pullThrough) }
                services.append(gateway)
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
            // Every service's tasks run on the node's own threads, never the cooperative pool (NodeExecutor).
            try await NodeExecutor.shared.run { try await group.run() }
            // The shutdown handler stops gossip from a task of its own, which may not run before the process exits
            // (and waiting for the gossip actor could take as long as a busy catalog): mark the state file stopped
            // here, so `status` says so at once.
            NodeState.markStopped(at: home.nodeStatePath)
            // The services hold the store and catalog in reference cycles: checkpoint them explicitly on the way out.
            catalog.checkpoint()
            store.closeIndex()
        }

        /// States how many file descriptors the node needs, raises the soft limit toward the hard one to cover it,
        /// and warns when it still does not (the node then refuses connections or fails to open packs under load).
        static func checkDescriptors(home: Home, config: HomeConfig, logger: Logger) {
            let packs =
                (try? FileManager.default.contentsOfDirectory(atPath: home.storePath + "/packs"))?
                .filter { $0.hasSuffix(".pack") }.count ?? 0
            let need = DescriptorNeed(inbound: config.inbound, outbound: config.outbound, packs: packs)
            let before = DescriptorLimit.current()
            let limit = DescriptorLimit.raise(toCover: need.total)
            var stated = "file descriptors: need about \(need.total) (\(need.explanation)); limit \(limit.description)"
            if limit != before {
                stated += " (soft limit raised from \(before.soft.map { String($0) } ?? "unlimited"))"
            }
            logger.info("\(stated)")
            guard !limit.covers(need.total) else { return }
            let warning: String =
                "file descriptors: the limit (\(limit.description)) is too low for [node] inbound = "
                + "\(config.inbound): the node needs about \(need.total) (\(need.explanation)) and will refuse "
                + "connections or fail to open packs when it runs out. Raise the hard limit (LimitNOFILE=65536 in the "
                + "systemd unit, `ulimit -Hn` as root, --ulimit nofile= for a container) or lower [node] inbound in "
                + home.configPath
            logger.warning("\(warning)")
        }

        /// The HTTP gateway if `--http` or `[gateway] listen` asks for one.
        func gateway(
            config: HomeConfig, store: ContentStore, catalog: Catalog, identity: NodeIdentity, gossip: GossipNode,
            policy: MirrorPolicy, scratch: String
        ) throws -> Gateway? {
            guard let text = http ?? config.gatewayListen else { return nil }
            guard let address = PeerAddress(parsing: text) else {
                throw CommandFailure(message: "--http takes HOST:PORT, not \(text)", exitCode: 2)
            }
            let settings = try config.gatewaySettings(host: address.host, port: address.port)
            // Files the node does not hold are pulled through from the holders gossip names, then kept.
            let maxAge = Int(policy.holderTTLSeconds * 1000)
            let pullThrough = PullThrough(
                store: store, identity: identity, scratchDirectory: scratch,
                logger: Logger(label: "alexandria.gateway"),
                peers: { manifest in await gossip.fetchPeers(holding: manifest, catalog: catalog, maxAgeMillis: maxAge)
                })
            let gateway = Gateway(
                store: store, catalog: catalog, settings: settings, pullThrough: pullThrough,
                logger: Logger(label: "alexandria.gateway"))
            // The status page at `/` and a page per release under `/ui/`.
            gateway.routes.append(
                PageRoutes(
                    store: store, catalog: catalog, aliases: settings.aliases,
                    node: NodeView(budgetBytes: policy.budgetBytes) { await gossip.snapshot() }))
            return gateway
        }
    }
}
