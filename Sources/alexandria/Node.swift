import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaPeer
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

        func run() async throws {
            let home = options.resolved
            try home.checkWritable()
            let config = try home.config()
            let address = listen ?? config.listen
            guard let parsed = PeerAddress(parsing: address) else {
                throw CommandFailure(message: "--listen takes HOST:PORT, not \(address)", exitCode: 2)
            }
            log.bootstrap()
            let logger = Logger(label: "alexandria.node")
            Self.checkDescriptors(home: home, config: config, logger: logger)
            let store = try home.openStore()
            let catalog = try Catalog(path: home.catalogPath)
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
            var settings = GossipSettings()
            settings.outboundTarget = config.outbound
            settings.inboundCap = config.inbound
            settings.fanout = config.fanout
            settings.antiEntropySeconds = config.antiEntropySeconds
            settings.peerExchangeSeconds = config.peerExchangeSeconds
            settings.peerTablePath = home.peerTablePath
            settings.statePath = home.nodeStatePath
            settings.dropPeersFile = config.dropPeersFile
            let gossip = GossipNode(
                catalog: catalog, identity: identity, bootstrap: bootstrap, settings: settings,
                logger: Logger(label: "alexandria.gossip"))
            server.gossip = gossip
            var policy = MirrorPolicy()
            policy.mode = noMirror ? .pinned : MirrorPolicy.Mode(rawValue: config.mirrorMode) ?? .all
            policy.budgetBytes = config.mirrorBudget ?? Self.defaultBudget(home.path)
            policy.publishers = config.mirrorPublishers
            policy.replicationFactor = config.replicationFactor
            policy.intervalSeconds = config.mirrorIntervalSeconds
            policy.holderTTLSeconds = config.holderTTLSeconds
            policy.demandReportSeconds = config.demandReportSeconds
            policy.scratchDirectory = home.path
            let mirror = Mirror(
                store: store, catalog: catalog, identity: identity, gossip: gossip, policy: policy,
                logger: Logger(label: "alexandria.mirror"))
            if let uploadRate {
                guard let bytes = ByteSize.parse(uploadRate), bytes > 0 else {
                    throw CommandFailure(message: "--upload-rate takes a size per second such as 50MiB", exitCode: 2)
                }
                server.uploadBytesPerSecond = Double(bytes)
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: [server, MirrorService(mirror: mirror)], gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
            try await group.run()
            // The shutdown handler stops gossip from a task of its own, which may not run before the process exits
            // (and waiting for the gossip actor could take as long as a busy catalog): mark the state file stopped
            // here, so `status` says so at once.
            NodeState.markStopped(at: home.nodeStatePath)
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

        /// A quarter of the free space where the home is, at most 50 GiB.
        static func defaultBudget(_ path: String) -> UInt64 {
            var st = statvfs()
            guard statvfs(path, &st) == 0 else { return 10 << 30 }
            return min(50 << 30, UInt64(st.f_bavail) * UInt64(st.f_frsize) / 4)
        }
    }
}

/// Runs the mirror's rounds until the node shuts down.
struct MirrorService: Service {
    let mirror: Mirror
    func run() async throws {
        try await cancelWhenGracefulShutdown { await mirror.run() }
    }
}
