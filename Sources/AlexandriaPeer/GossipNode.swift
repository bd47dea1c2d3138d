import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import AlexandriaWire
import Foundation
import Logging
import NIOCore
import NIOPosix

/// How a node gossips and keeps its peers (config `[gossip]`, `[node]`).
public struct GossipSettings: Sendable {
    /// Outbound connections the node keeps open.
    public var outboundTarget = 8
    /// Inbound connections it accepts at most.
    public var inboundCap = 64
    /// Peers a new item is pushed to by each node that sees it first.
    public var fanout = 3
    /// Other links (not pushed to, not on the path) that a node pushing new items also tells their ids, in one small
    /// RECONCILE frame, so a peer the push wave missed asks for them at once instead of at its next anti-entropy round.
    public var lazyPushLinks = 0
    /// Seconds between anti-entropy rounds (one random connected peer each).
    public var antiEntropySeconds = 1.0
    /// Seconds between peer-exchange queries.
    public var peerExchangeSeconds = 30.0
    /// Seconds between closing one outbound connection (when all slots are full) so the overlay keeps mixing and a
    /// healed partition reconnects.
    public var rotateSeconds = 10.0
    /// Seconds between looks at the catalog for items a CLI process on this home added.
    public var pollSeconds = 0.1
    /// Where the peer table is kept (`<home>/peers.json`), and the state file `status`/`peers` read.
    public var peerTablePath: String?
    public var statePath: String?
    /// Test switch (`[test] drop_peers_file`): a file whose lines are node keys (hex) whose traffic this node drops,
    /// as if partitioned; re-read every second, so a test can heal the partition.
    public var dropPeersFile: String?
    /// Wire v1's `idleTimeout` on this node's connections (shorter only in tests): a gossip link on which this node
    /// has sent nothing for half of it gets an anti-entropy round, which keeps the link open (Protocol/gossip-v1.md).
    public var idleTimeoutSeconds = Double(WireLimits.idleTimeoutSeconds)
    /// Admission to the peer table and the dial budget of addresses learned from peers.
    public var table = PeerTable.Limits()

    public init() {}
}

/// A live connection to a peer, either direction. Messages go out through a bounded queue drained by the connection's
/// own task, so a slow peer never blocks gossip to the others; gossip that does not fit is dropped (anti-entropy
/// repairs it).
final class Link: @unchecked Sendable {
    let id: LinkID
    let key: [UInt8]
    let channel: Channel
    let queue: AsyncStream<WireMessage>.Continuation
    let stream: AsyncStream<WireMessage>

    init(id: LinkID, key: [UInt8], channel: Channel) {
        self.id = id
        self.key = key
        self.channel = channel
        (stream, queue) = AsyncStream<WireMessage>.makeStream(bufferingPolicy: .bufferingOldest(512))
    }
}

/// The core's own counts, for the state file, the simulator's figures and tests. The same events feed the node's
/// metrics (`NodeMetrics`, `/metrics` on the gateway).
public struct GossipCounters: Codable, Sendable {
    public var sent: [String: Int] = [:]
    public var bytesSent = 0
    public var received: [String: Int] = [:]
    public var bytesReceived = 0
    public var itemsAdded = 0
    public var itemsInvalid = 0
    public var itemsConflicting = 0
    /// Items refused because a compromise notice this node holds froze their publisher's log before them.
    public var itemsRefused = 0
    public var reconcileRounds = 0
    /// ITEMS messages sent per item (id hex, first 16 digits), for the most recent items.
    public var itemSends: [String: Int] = [:]
}

/// The gossip half of a node: a thin driver around `GossipCore`, which makes every decision (peer table,
/// connections, push, anti-entropy, peer exchange, scores and bans; Protocol/gossip-v1.md). This actor feeds it
/// events with the wall clock and carries out its actions on NIO channels. Replication and witnessing run beside it
/// (`Mirror`).
public actor GossipNode {
    let catalog: Catalog
    let identity: NodeIdentity
    let settings: GossipSettings
    let logger: Logger
    var core: GossipCore
    /// The channel behind each link the core knows.
    var channels: [LinkID: Link] = [:]
    var nextLinkID: LinkID = 1
    var listenPort = 0
    weak var server: PeerServer?
    /// Set by the mirror: what this node holds, for the state file.
    var mirrorState: [String: String] = [:]

    public init(
        catalog: Catalog, identity: NodeIdentity, bootstrap: [PeerAddress], settings: GossipSettings, logger: Logger
    ) {
        self.catalog = catalog
        self.identity = identity
        self.settings = settings
        self.logger = logger
        core = GossipCore(
            catalog: catalog, selfKey: identity.publicKey, bootstrap: bootstrap, settings: settings,
            random: GossipRandom(seed: UInt64.random(in: 0...UInt64.max)), now: Date().timeIntervalSince1970)
    }

    func attach(server: PeerServer, port: Int) {
        self.server = server
        listenPort = port
    }

    var selfHex: String { core.selfHex }
    var now: Double { Date().timeIntervalSince1970 }

    // MARK: - Running

    /// Runs until cancelled: dialing, polling, anti-entropy, peer exchange, persistence.
    func run() async {
        loadTable()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.every(1.0) { await self.maintain() } }
            group.addTask { await self.every(self.settings.pollSeconds) { await self.fire(.poll) } }
            group.addTask { await self.every(self.settings.antiEntropySeconds) { await self.fire(.antiEntropy) } }
            group.addTask { await self.every(self.settings.peerExchangeSeconds) { await self.fire(.peerExchange) } }
            group.addTask {
                await self.every(2.0) {
                    await self.writeState()
                    await self.saveTable()
                }
            }
            await group.waitForAll()
        }
        saveTable()
        writeState()
        for link in channels.values { link.channel.close(promise: nil) }
    }

    nonisolated func every(_ seconds: Double, _ body: @Sendable () async -> Void) async {
        while !Task.isCancelled {
            await body()
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        }
    }

    func fire(_ timer: GossipTimer) {
        perform(core.fire(timer, now: now))
    }

    /// Re-reads the test partition switch, then lets the core keep the outbound slots full.
    func maintain() {
        if let path = settings.dropPeersFile {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            let keys = Set(
                text.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: .whitespaces) })
            perform(core.setDropped(keys))
        }
        fire(.maintain)
    }

    /// Carries out the core's actions. Returns the error of a `fail` aimed at `current` (the caller throws it, which
    /// sends ERROR and closes that connection).
    @discardableResult
    func perform(_ actions: [GossipAction], current: LinkID? = nil) -> WireError? {
        var failure: WireError?
        for action in actions {
            switch action {
            case .send(let message, let id):
                channels[id]?.queue.yield(message)
            case .close(let id):
                channels[id]?.channel.close(promise: nil)
            case .fail(let id, let error):
                if id == current {
                    failure = error
                } else {
                    channels[id]?.channel.pipeline.fireErrorCaught(error)
                }
            case .dial(let address):
                guard let server else { continue }
                let port = listenPort
                server.requestDial(address, listenPort: port)
            case .warn(let text, let peer):
                logger.warning("\(text)", metadata: ["peer.id": "\(peer?.prefix(16) ?? "self")"])
            }
        }
        return failure
    }

    // MARK: - Connections

    /// Registers an authenticated connection. Returns nil if it must be closed (cap reached, duplicate, banned,
    /// partitioned by the test switch).
    func register(
        key: [UInt8], initiatedBySelf: Bool, listenAddress: PeerAddress?, channel: Channel
    ) -> Link? {
        let id = nextLinkID
        nextLinkID += 1
        let (accepted, actions) = core.connected(
            id: id, key: key, outbound: initiatedBySelf, address: listenAddress, now: now)
        guard accepted else { return nil }
        let link = Link(id: id, key: key, channel: channel)
        channels[id] = link
        logger.debug(
            "peer connected",
            metadata: ["peer.id": "\(Hex.encode(key).prefix(16))", "peer.outbound": "\(initiatedBySelf)"])
        perform(actions)
        return link
    }

    /// Graceful shutdown: closes every gossip link now (they are long-lived, so the server would otherwise wait on
    /// them), and refuses new ones.
    func stop() {
        perform(core.stop())
        saveTable()
        writeState()
        for link in channels.values { link.channel.close(promise: nil) }
    }

    func unregister(_ link: Link) {
        core.disconnected(id: link.id, key: link.key)
        channels.removeValue(forKey: link.id)
        link.queue.finish()
    }

    func dialFailed(_ address: PeerAddress) { core.dialFailed(address) }

    // MARK: - Receiving

    /// Handles a gossip message from `link`. Throws to drop the connection (a peer past its fault limit).
    func handle(_ message: WireMessage, from link: Link) throws {
        if let error = perform(core.receive(message, from: link.id, key: link.key, now: now), current: link.id) {
            throw error
        }
    }

    // MARK: - For the mirror and the CLI

    /// Adds items this node made (a cosignature, an availability statement) and pushes them.
    func publishOwn(_ items: [CatalogItem]) {
        perform(core.publishOwn(items, now: now))
    }

    /// Listen addresses of connected peers and of table entries, by node key (hex).
    func addresses() -> [String: PeerAddress] { core.addresses() }

    func connectedKeys() -> [String] { Array(core.links.keys) }

    /// Node keys (hex) known to be up: this node, connected peers, and table entries seen within `seconds`.
    func liveNodes(within seconds: Double) -> Set<String> { core.liveNodes(within: seconds, now: now) }

    func setMirrorState(_ state: [String: String]) { mirrorState = state }

    // MARK: - Persistence

    func loadTable() {
        guard let path = settings.peerTablePath, let data = FileManager.default.contents(atPath: path),
            let entries = try? JSONDecoder().decode([PeerEntry].self, from: data)
        else { return }
        core.load(entries)
    }

    func saveTable() {
        guard let path = settings.peerTablePath else { return }
        let entries = core.table.entries.values.sorted { $0.lastSeen > $1.lastSeen }
        guard let data = try? JSONEncoder().encode(entries) else { return }
        let tmp = path + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: data) { _ = rename(tmp, path) }
    }

    /// What this node is doing now: the state file's content, also shown on the gateway's status page.
    public func snapshot() -> NodeState {
        let now = self.now
        return NodeState(
            node: selfHex, listen: listenPort, updated: now, catalogItems: catalog.itemCount,
            pendingItems: core.pending.count, knownPeers: core.table.count,
            peers: core.sortedLinks.map {
                NodeState.Peer(
                    id: $0.keyHex, address: $0.address?.description ?? "?",
                    direction: $0.outbound ? "out" : "in", score: core.table[$0.keyHex]?.score ?? 0,
                    connectedSeconds: now - $0.since)
            }, counters: core.counters, mirror: mirrorState, pid: getpid(), stopped: core.stopping)
    }

    func writeState() {
        guard let path = settings.statePath else { return }
        // The catalog mark follows the daemon's commits within two seconds, so a -wal lost later is seen as damage.
        try? catalog.writeMark()
        let state = snapshot()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(state) else { return }
        let tmp = path + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: data) { _ = rename(tmp, path) }
    }
}

/// What `node run` writes to `<home>/node-state.json` every two seconds, for `status` and `peers`.
public struct NodeState: Codable, Sendable {
    public struct Peer: Codable, Sendable {
        public let id: String
        public let address: String
        public let direction: String
        public let score: Double
        public let connectedSeconds: Double
    }
    public let node: String
    public let listen: Int
    public let updated: Double
    public let catalogItems: Int
    public let pendingItems: Int
    public let knownPeers: Int
    public let peers: [Peer]
    public let counters: GossipCounters
    public let mirror: [String: String]
    /// The node's process id, so a reader can tell a node that died without stopping (absent in older files).
    public let pid: Int32?
    /// True once the node has begun to stop: the last state it writes says so (absent in older files).
    public let stopped: Bool?

    /// Rewrites the state file at `path` with `stopped: true` (atomically), leaving the rest as the node last wrote
    /// it. For the daemon's last act, when the gossip actor may be busy.
    public static func markStopped(at path: String) {
        guard let data = FileManager.default.contents(atPath: path),
            var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let pid = object["pid"] as? Int, pid == Int(getpid())
        else { return }
        object["stopped"] = true
        guard let out = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        else { return }
        let tmp = path + ".stopped.tmp"
        if FileManager.default.createFile(atPath: tmp, contents: out) { _ = rename(tmp, path) }
    }
}
