import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaMetrics
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
    let key: [UInt8]
    let keyHex: String
    let initiatedBySelf: Bool
    let listenAddress: PeerAddress?
    let channel: Channel
    let queue: AsyncStream<WireMessage>.Continuation
    let stream: AsyncStream<WireMessage>
    let since = Date()
    /// Touched only by the gossip node (an actor): when it last queued a message here, and the PEERS_QUERYs it sent
    /// here that no PEERS has answered yet (an unsolicited PEERS is a protocol violation).
    var lastSent = Date()
    var peersQueries = 0

    init(key: [UInt8], initiatedBySelf: Bool, listenAddress: PeerAddress?, channel: Channel) {
        self.key = key
        self.keyHex = Hex.encode(key)
        self.initiatedBySelf = initiatedBySelf
        self.listenAddress = listenAddress
        self.channel = channel
        (stream, queue) = AsyncStream<WireMessage>.makeStream(bufferingPolicy: .bufferingOldest(512))
    }

    var prefix: [UInt8] { Array(key.prefix(8)) }
}

/// What the state file keeps for Benchmarks/gossip.sh, which runs its nodes without a gateway. Messages, bytes and
/// item outcomes are metrics (`NodeMetrics`, `/metrics` on the gateway).
public struct GossipCounters: Codable, Sendable {
    /// Gossip bytes sent (as `alexandria_gossip_bytes_total{direction="sent"}`).
    public var bytesSent = 0
    /// ITEMS messages sent per item (id hex, first 16 digits), for the most recent items: per item, so no metric.
    public var itemSends: [String: Int] = [:]
}

/// The gossip half of a node: the peer table and connections, push with duplicate suppression, anti-entropy by set
/// reconciliation, and peer exchange (Protocol/gossip-v1.md). Replication and witnessing run beside it (`Mirror`).
public actor GossipNode {
    let catalog: Catalog
    let identity: NodeIdentity
    let settings: GossipSettings
    let logger: Logger
    var bootstrap: [PeerAddress]
    var table: PeerTable
    var links: [String: Link] = [:]
    var pending: [ContentHash: CatalogItem] = [:]
    /// Ids this node already pushed or was pushed (so a CLI-added item is pushed once).
    var handled: Set<ContentHash> = []
    var lastSeq = 0
    var counters = GossipCounters()
    var listenPort = 0
    weak var server: PeerServer?
    var droppedKeys: Set<String> = []
    var lastRotation = Date()
    /// Addresses in one PEERS answer (of the wire limit of 64): the most recently seen.
    static let peersPerAnswer = 32
    /// Set on graceful shutdown: every link is closed and no new one is taken.
    var stopping = false
    var recentItems: [String] = []
    /// Set by the mirror: what this node holds, for the state file.
    var mirrorState: [String: String] = [:]

    public init(
        catalog: Catalog, identity: NodeIdentity, bootstrap: [PeerAddress], settings: GossipSettings, logger: Logger
    ) {
        self.catalog = catalog
        self.identity = identity
        self.bootstrap = bootstrap
        self.settings = settings
        self.logger = logger
        table = PeerTable(limits: settings.table)
    }

    func attach(server: PeerServer, port: Int) {
        self.server = server
        listenPort = port
    }

    var selfHex: String { Hex.encode(identity.publicKey) }

    // MARK: - Running

    /// Runs until cancelled: dialing, polling, anti-entropy, peer exchange, persistence.
    func run() async {
        loadTable()
        lastSeq = catalog.lastItemSeq
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.every(1.0) { await self.maintain() } }
            group.addTask { await self.every(self.settings.pollSeconds) { await self.pollLocal() } }
            group.addTask { await self.every(self.settings.antiEntropySeconds) { await self.antiEntropy() } }
            group.addTask { await self.every(self.settings.peerExchangeSeconds) { await self.peerExchange() } }
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
        for link in links.values { link.channel.close(promise: nil) }
    }

    nonisolated func every(_ seconds: Double, _ body: @Sendable () async -> Void) async {
        while !Task.isCancelled {
            await body()
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        }
    }

    // MARK: - Connections

    /// Registers an authenticated connection. Returns nil if it must be closed (cap reached, duplicate, banned,
    /// partitioned by the test switch).
    func register(
        key: [UInt8], initiatedBySelf: Bool, listenAddress: PeerAddress?, channel: Channel
    ) -> Link? {
        let hex = Hex.encode(key)
        if stopping || dropped(hex) { return nil }
        if let entry = table[hex], entry.bannedUntil > Date().timeIntervalSince1970 { return nil }
        if !initiatedBySelf && links.values.filter({ !$0.initiatedBySelf }).count >= settings.inboundCap {
            return nil
        }
        if let existing = links[hex] {
            // Both sides keep the connection initiated by the smaller key, so a crossed dial settles on one.
            let keepNew = (initiatedBySelf ? identity.publicKey : key).lexicographicallyPrecedes(
                existing.initiatedBySelf ? identity.publicKey : key)
            if !keepNew { return nil }
            existing.channel.close(promise: nil)
        }
        let link = Link(key: key, initiatedBySelf: initiatedBySelf, listenAddress: listenAddress, channel: channel)
        links[hex] = link
        if let a = listenAddress {
            table.connected(key: hex, address: a, dialled: initiatedBySelf, now: Date().timeIntervalSince1970)
        }
        logger.debug(
            "peer connected", metadata: ["peer.id": "\(hex.prefix(16))", "peer.outbound": "\(initiatedBySelf)"])
        // A fresh connection: reconcile at once (a node back from offline catches up now), and learn its peers while
        // this node knows few (rotation makes new links all the time; the periodic exchange is enough after that).
        if table.count < 4 * settings.outboundTarget { send(.peersQuery, to: link) }
        send(.reconcile(round: 0, ranges: Reconciler.open((try? catalog.itemIDs()) ?? [])), to: link)
        return link
    }

    /// Graceful shutdown: closes every gossip link now (they are long-lived, so the server would otherwise wait on
    /// them), and refuses new ones.
    func stop() {
        stopping = true
        saveTable()
        writeState()
        for link in links.values { link.channel.close(promise: nil) }
        links.removeAll()
    }

    func unregister(_ link: Link) {
        if links[link.keyHex] === link { links.removeValue(forKey: link.keyHex) }
        link.queue.finish()
    }

    func dropped(_ hex: String) -> Bool { droppedKeys.contains(hex) }

    /// Keeps `outboundTarget` outbound connections: bootstrap addresses first while none is connected, then the
    /// peer table, best score and most recently seen first, with exponential backoff after failures.
    func maintain() async {
        if let path = settings.dropPeersFile {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            droppedKeys = Set(
                text.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: .whitespaces) })
            for (hex, link) in links where dropped(hex) { link.channel.close(promise: nil) }
        }
        var outbound = links.values.filter(\.initiatedBySelf).count
        if outbound >= settings.outboundTarget, Date().timeIntervalSince(lastRotation) >= settings.rotateSeconds,
            let victim = links.values.filter(\.initiatedBySelf).randomElement()
        {
            // Rotation: one slot is freed and redialled at random, so the overlay keeps mixing.
            lastRotation = Date()
            victim.channel.close(promise: nil)
            links.removeValue(forKey: victim.keyHex)
            outbound -= 1
        }
        keepAlive()
        guard !stopping, outbound < settings.outboundTarget, let server else { return }
        let now = Date().timeIntervalSince1970
        let slots = settings.outboundTarget - outbound
        var dials: [PeerAddress] = []
        let connectedAddresses = Set(links.values.compactMap(\.listenAddress))
        if links.isEmpty {
            dials += bootstrap.filter { !connectedAddresses.contains($0) }.prefix(slots)
        }
        let ranked = table.entries.values.filter {
            $0.key != selfHex && links[$0.key] == nil && $0.bannedUntil < now && !dropped($0.key)
                && now - $0.lastAttempt >= min(60, pow(2, Double($0.failures)))
        }.shuffled().sorted { ($0.score < 0 ? 0 : 1) > ($1.score < 0 ? 0 : 1) }
        for entry in ranked where dials.count < slots {
            // An address a peer named is dialled only within that peer's dial budget.
            guard table.spendDial(entry.key, now: now) else { continue }
            dials.append(PeerAddress(host: entry.host, port: entry.port))
        }
        if dials.isEmpty && links.isEmpty { dials = Array(bootstrap.prefix(slots)) }
        for address in dials {
            for (hex, e) in table.entries where e.host == address.host && e.port == address.port {
                table[hex]?.lastAttempt = now
            }
            let port = listenPort
            Task { await server.dial(address, listenPort: port) }
        }
    }

    /// Wire v1 closes a connection that receives no complete frame for `idleTimeout`. A gossip link this node has
    /// sent nothing on for half of that gets an anti-entropy round (one RECONCILE frame), so quiet links stay open.
    func keepAlive() {
        let quiet = links.values.filter { Date().timeIntervalSince($0.lastSent) >= settings.idleTimeoutSeconds / 2 }
        guard !quiet.isEmpty, let ids = try? catalog.itemIDs() else { return }
        for link in quiet { send(.reconcile(round: 0, ranges: Reconciler.open(ids)), to: link) }
    }

    func dialFailed(_ address: PeerAddress) {
        for (hex, entry) in table.entries where entry.host == address.host && entry.port == address.port {
            table[hex]?.failures += 1
        }
    }

    // MARK: - Sending

    func send(_ message: WireMessage, to link: Link) {
        let name = Self.name(of: message)
        let bytes = message.encodedPayload.count + 5
        counters.bytesSent += bytes
        NodeMetrics.gossipMessage(sent: true, type: name, bytes: bytes)
        link.lastSent = Date()
        if case .peersQuery = message { link.peersQueries += 1 }
        link.queue.yield(message)
    }

    static func name(of message: WireMessage) -> String {
        switch message {
        case .items: return "items"
        case .reconcile: return "reconcile"
        case .want: return "want"
        case .peers: return "peers"
        case .peersQuery: return "peers_query"
        default: return "other"
        }
    }

    /// Sends items in messages that respect the item count and frame size limits.
    func sendItems(_ items: [CatalogItem], path: [[UInt8]], to link: Link) {
        for item in items {
            let key = String(item.id.hex.prefix(16))
            if counters.itemSends[key] == nil {
                recentItems.append(key)
                if recentItems.count > 256 { counters.itemSends.removeValue(forKey: recentItems.removeFirst()) }
            }
            counters.itemSends[key, default: 0] += 1
        }
        var batch: [CatalogItem] = []
        var bytes = 0
        for item in items {
            if !batch.isEmpty
                && (batch.count == GossipLimits.maxItemsPerMessage
                    || bytes + item.body.count + 5 > WireLimits.maxFrameBytes - 4096)
            {
                send(.items(path: path, items: batch), to: link)
                batch = []
                bytes = 0
            }
            batch.append(item)
            bytes += item.body.count + 5
        }
        if !batch.isEmpty { send(.items(path: path, items: batch), to: link) }
    }

    /// Pushes new items to `fanout` connected peers that are not in `path` and not `except`; the path sent on names
    /// this node and every chosen target, so they do not pick each other.
    func push(_ items: [CatalogItem], path: [[UInt8]], except: String?) {
        guard !items.isEmpty else { return }
        for item in items { handled.insert(item.id) }
        let seen = Set(path.map { Hex.encode($0) })
        let eligible = links.values.filter { $0.keyHex != except && !seen.contains(Hex.encode($0.prefix)) }
        let targets = Array(eligible.shuffled().prefix(settings.fanout))
        guard !targets.isEmpty else { return }
        var newPath = path + [Array(identity.publicKey.prefix(8))] + targets.map(\.prefix)
        if newPath.count > GossipLimits.maxPathEntries {
            newPath = Array(newPath.suffix(GossipLimits.maxPathEntries))
        }
        for target in targets { sendItems(items, path: newPath, to: target) }
    }

    /// Items a CLI process (publish, yank, fetch) or the mirror added to the catalog since the last look.
    func pollLocal() {
        guard let (items, last) = try? catalog.items(after: lastSeq) else { return }
        lastSeq = last
        let fresh = items.filter { !handled.contains($0.id) }
        if !fresh.isEmpty {
            logger.debug("pushing local items", metadata: ["items.count": "\(fresh.count)"])
            push(fresh, path: [], except: nil)
        }
        if handled.count > 100_000 { handled.removeAll() }
    }

    // MARK: - Receiving

    /// Handles a gossip message from `link`. Throws to drop the connection (a peer past its fault limit).
    func handle(_ message: WireMessage, from link: Link) throws {
        NodeMetrics.gossipMessage(sent: false, type: Self.name(of: message), bytes: message.encodedPayload.count + 5)
        if dropped(link.keyHex) {
            link.channel.close(promise: nil)
            return
        }
        table[link.keyHex]?.lastSeen = Date().timeIntervalSince1970
        switch message {
        case .items(let path, let items):
            try receive(items, path: path, from: link)
        case .reconcile(let round, let ranges):
            let step: Reconciler.Step
            do { step = try Reconciler.step(try catalog.itemIDs(), message: ranges) } catch let e as GossipError {
                try fault(link, "bad RECONCILE: \(e)")
                return
            } catch { return }
            if !step.theyLack.isEmpty, let items = try? catalog.items(step.theyLack) {
                sendItems(items, path: [], to: link)
            }
            if !step.weLack.isEmpty {
                let wanted = step.weLack.filter { pending[$0] == nil }
                for part in stride(from: 0, to: wanted.count, by: GossipLimits.maxWant) {
                    send(.want(Array(wanted[part..<min(wanted.count, part + GossipLimits.maxWant)])), to: link)
                }
            }
            if let reply = step.reply, round < 40 { send(.reconcile(round: round &+ 1, ranges: reply), to: link) }
        case .want(let ids):
            if let items = try? catalog.items(ids) { sendItems(items, path: [], to: link) }
        case .peersQuery:
            let now = Date().timeIntervalSince1970
            var records: [PeerRecord] = []
            let fresh = table.entries.values.filter {
                $0.key != link.keyHex && now - $0.lastSeen < 24 * 3600
                    && PeerTable.isDialable(host: $0.host, port: $0.port)
            }
            .sorted { $0.lastSeen > $1.lastSeen }
            for e in fresh.prefix(Self.peersPerAnswer) {
                guard let key = Hex.decode(e.key), key.count == 32, e.host.utf8.count < 256 else { continue }
                records.append(
                    PeerRecord(nodeKey: key, host: e.host, port: UInt16(e.port), lastSeen: UInt64(e.lastSeen)))
            }
            send(.peers(records), to: link)
        case .peers(let records):
            // PEERS answers a PEERS_QUERY; one nobody asked for is a protocol violation (Protocol/gossip-v1.md).
            guard link.peersQueries > 0 else {
                throw WireError(.protocolViolation, "PEERS without a PEERS_QUERY")
            }
            link.peersQueries -= 1
            let learned = table.learn(
                records, from: link.keyHex, selfKey: selfHex, now: Date().timeIntervalSince1970)
            if learned.hostile > 0 || learned.refused > 0 {
                logger.debug(
                    "peer addresses not taken",
                    metadata: [
                        "peer.id": "\(link.keyHex.prefix(16))", "hostile": "\(learned.hostile)",
                        "refused": "\(learned.refused)",
                    ])
            }
        default:
            break
        }
    }

    func receive(_ items: [CatalogItem], path: [[UInt8]], from link: Link) throws {
        var fresh: [CatalogItem] = []
        for item in items {
            if let new = try offer(item, from: link) { fresh += new }
        }
        guard !fresh.isEmpty else { return }
        fresh += retryPending()
        if path.isEmpty {
            // Learned by repair (an answer to reconciliation or WANT), not by push: the push wave for these is under
            // way or over, and anti-entropy reaches whoever it missed, so pass on only what this node made itself
            // from them (an equivocation proof). This keeps an announcement at most `fanout` messages per node.
            let received = Set(items.map(\.id))
            fresh = fresh.filter { $0.kind == .equivocation && !received.contains($0.id) }
            if fresh.isEmpty { return }
        }
        push(fresh, path: path, except: link.keyHex)
    }

    /// Offers one item to the catalog; returns the items to pass on (nil if none). Faults count against `link`.
    func offer(_ item: CatalogItem, from link: Link?) throws -> [CatalogItem]? {
        let kind = "\(item.kind)"
        do {
            switch try catalog.accept(item) {
            case .added(let derived):
                NodeMetrics.gossipItem(kind: kind, outcome: "added")
                if let link { table[link.keyHex]?.score += 0.1 }
                return [item] + derived
            case .conflict(let derived):
                NodeMetrics.gossipItem(kind: kind, outcome: "conflict")
                logger.warning(
                    "overwrite attempt seen: conflicting signed items; proof stored and passed on",
                    metadata: ["item.kind": "\(item.kind)", "item.id": "\(item.id.hex.prefix(16))"])
                return [item] + derived
            case .pending:
                NodeMetrics.gossipItem(kind: kind, outcome: "pending")
                if pending.count < GossipLimits.maxPending { pending[item.id] = item }
                return nil
            case .duplicate:
                NodeMetrics.gossipItem(kind: kind, outcome: "duplicate")
                return nil
            case .stale:
                NodeMetrics.gossipItem(kind: kind, outcome: "stale")
                return nil
            }
        } catch let error as ManifestError where error.code == .frozen {
            // Past a compromise notice this node holds: refused, but a peer that has not yet seen the notice is not
            // at fault for offering it.
            NodeMetrics.gossipItem(kind: kind, outcome: "refused")
            return nil
        } catch let error as ManifestError where error.code == .equivocation {
            // A publisher's own log rebinding a release: evidence, not the relaying peer's fault.
            NodeMetrics.gossipItem(kind: kind, outcome: "conflict")
            return nil
        } catch {
            NodeMetrics.gossipItem(kind: kind, outcome: "invalid")
            if let link { try fault(link, "invalid \(item.kind) item: \(error)") }
            return nil
        }
    }

    /// Items waiting for what they depend on, offered again until no more can be added.
    func retryPending() -> [CatalogItem] {
        var out: [CatalogItem] = []
        var progress = true
        while progress && !pending.isEmpty {
            progress = false
            for (id, item) in pending.sorted(by: { $0.value.kind < $1.value.kind }) {
                guard let new = try? offer(item, from: nil) else {
                    if (try? catalog.hasItem(id)) == true { pending.removeValue(forKey: id) }
                    continue
                }
                pending.removeValue(forKey: id)
                out += new
                progress = true
            }
        }
        return out
    }

    /// Lowers a peer's score; past the limit the connection is dropped and the peer banned for a while.
    func fault(_ link: Link, _ why: String) throws {
        var entry =
            table[link.keyHex]
            ?? PeerEntry(
                key: link.keyHex, host: link.listenAddress?.host ?? "", port: link.listenAddress?.port ?? 0,
                lastSeen: Date().timeIntervalSince1970)
        entry.score -= 5
        logger.warning("peer sent a bad item", metadata: ["peer.id": "\(link.keyHex.prefix(16))", "error": "\(why)"])
        if entry.score <= -20 {
            entry.bannedUntil = Date().timeIntervalSince1970 + 600
            table[link.keyHex] = entry
            throw WireError(.protocolViolation, "too many invalid items")
        }
        table[link.keyHex] = entry
    }

    // MARK: - Rounds

    func antiEntropy() {
        guard let link = links.values.randomElement(), let ids = try? catalog.itemIDs() else { return }
        send(.reconcile(round: 0, ranges: Reconciler.open(ids)), to: link)
    }

    func peerExchange() {
        guard let link = links.values.randomElement() else { return }
        send(.peersQuery, to: link)
    }

    // MARK: - For the mirror and the CLI

    /// Adds items this node made (a cosignature, an availability statement) and pushes them.
    func publishOwn(_ items: [CatalogItem]) {
        var fresh: [CatalogItem] = []
        for item in items {
            if let new = try? offer(item, from: nil) { fresh += new }
        }
        push(fresh, path: [], except: nil)
    }

    /// Listen addresses of connected peers and of table entries, by node key (hex).
    func addresses() -> [String: PeerAddress] {
        var out: [String: PeerAddress] = [:]
        for (hex, e) in table.entries where e.port > 0 { out[hex] = PeerAddress(host: e.host, port: e.port) }
        for (hex, l) in links { if let a = l.listenAddress { out[hex] = a } }
        return out
    }

    func connectedKeys() -> [String] { Array(links.keys) }

    /// Node keys (hex) known to be up: this node, connected peers, and table entries seen within `seconds`.
    func liveNodes(within seconds: Double) -> Set<String> {
        let now = Date().timeIntervalSince1970
        var out = Set(links.keys)
        out.insert(selfHex)
        for (hex, e) in table.entries where now - e.lastSeen <= seconds && !dropped(hex) { out.insert(hex) }
        return out
    }

    func setMirrorState(_ state: [String: String]) { mirrorState = state }

    // MARK: - Persistence

    func loadTable() {
        guard let path = settings.peerTablePath, let data = FileManager.default.contents(atPath: path),
            let entries = try? JSONDecoder().decode([PeerEntry].self, from: data)
        else { return }
        for e in entries.prefix(table.limits.maxEntries) where e.key != selfHex { table[e.key] = e }
    }

    func saveTable() {
        guard let path = settings.peerTablePath else { return }
        let entries = table.entries.values.sorted { $0.lastSeen > $1.lastSeen }
        guard let data = try? JSONEncoder().encode(entries) else { return }
        let tmp = path + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: data) { _ = rename(tmp, path) }
    }

    /// What this node is doing now: the state file's content, also shown on the gateway's status page.
    public func snapshot() -> NodeState {
        let now = Date()
        return NodeState(
            node: selfHex, listen: listenPort, updated: now.timeIntervalSince1970, catalogItems: catalog.itemCount,
            pendingItems: pending.count, knownPeers: table.count,
            peers: links.values.sorted { $0.keyHex < $1.keyHex }.map {
                NodeState.Peer(
                    id: $0.keyHex, address: $0.listenAddress?.description ?? "?",
                    direction: $0.initiatedBySelf ? "out" : "in", score: table[$0.keyHex]?.score ?? 0,
                    connectedSeconds: now.timeIntervalSince($0.since))
            }, counters: counters, mirror: mirrorState, pid: getpid(), stopped: stopping)
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
