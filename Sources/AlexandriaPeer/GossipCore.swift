import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaMetrics
import AlexandriaWire

/// What the gossip core needs from a catalog: the item set and the verdict on an offered item. `Catalog` (SQLite)
/// is the real one; the simulator has an in-memory one with the same outcomes. Validation (signatures, logs, fork
/// choice) lives behind `accept`, never in the core.
public protocol GossipCatalog: AnyObject {
    /// Every item id held, ascending, no duplicates (the set reconciliation compares).
    func itemIDs() throws -> [ContentHash]
    /// The same set as an index that fingerprints any range without hashing its ids, kept up to date as items
    /// arrive and go (what every anti-entropy round reads: it must not cost a pass over the whole set).
    func itemIndex() throws -> ItemIndex
    /// The held items among `ids`, in dependency order (kind, then arrival).
    func items(_ ids: [ContentHash]) throws -> [CatalogItem]
    /// Verifies and stores an item. Throws for an item that is malformed or badly signed (the sender is at fault);
    /// `ManifestError` `.frozen` and `.equivocation` are refusals that are nobody's fault.
    func accept(_ item: CatalogItem) throws -> Catalog.ItemOutcome
    func hasItem(_ id: ContentHash) throws -> Bool
    /// Items added after `seq` (by anyone: a CLI process, the mirror), with the newest seq.
    func items(after seq: Int, limit: Int) throws -> (items: [CatalogItem], last: Int)
    var lastItemSeq: Int { get }
}

extension Catalog: GossipCatalog {}

/// A connection's identity as the driver names it (unique for the life of the driver).
public typealias LinkID = Int

/// The core's view of one live connection.
public struct GossipLink: Sendable, Equatable {
    public let id: LinkID
    public let key: [UInt8]
    public let keyHex: String
    public let outbound: Bool
    public let address: PeerAddress?
    /// Seconds since 1970 (the core's clock).
    public let since: Double
    public internal(set) var lastSent: Double
    /// PEERS_QUERYs sent here that no PEERS has answered yet (an unsolicited PEERS is a protocol violation).
    public internal(set) var peersQueries = 0
    var prefix: [UInt8] { Array(key.prefix(8)) }
}

/// What the driver must do for the core.
public enum GossipAction: Sendable {
    /// Queue `message` on the link (dropping it if the link's queue is full: anti-entropy repairs that).
    case send(WireMessage, to: LinkID)
    /// Close the link without an error (rotation, a superseded duplicate, a partitioned peer, shutdown).
    case close(LinkID)
    /// The peer broke the protocol or passed its fault limit: send ERROR with this, then close.
    case fail(LinkID, WireError)
    /// Open an outbound connection to the address; report `connected` or `dialFailed`.
    case dial(PeerAddress)
    /// Something an operator should see (a bad item, an overwrite attempt).
    case warn(String, peer: String?)
}

/// The periodic timers the core runs on; the driver fires each every `GossipCore.interval(of:)` seconds.
public enum GossipTimer: Sendable, CaseIterable {
    /// Dial to keep outbound slots full, rotate one, keep quiet links alive.
    case maintain
    /// Look at the catalog for items added by someone else (a CLI process, the mirror).
    case poll
    /// One reconciliation round with a random connected peer.
    case antiEntropy
    /// One PEERS_QUERY to a random connected peer.
    case peerExchange
}

/// A small seedable generator (SplitMix64) so the core's random choices replay exactly from a seed.
public struct GossipRandom: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The gossip node's decisions as an I/O-free state machine (Protocol/gossip-v1.md), in the style of
/// swift-nio-http2's connection state machine: every input is an event carrying the time (seconds since 1970, from
/// the driver's clock), every output is a list of `GossipAction`s. No sockets, no clock, no dictionary order in a
/// decision: choices are made over key-sorted lists with the injected `GossipRandom`, so a simulator replays a whole
/// network from one seed. The catalog is called directly (it is the verdict on an item, not I/O the core schedules).
///
/// What it decides: which links to accept (caps, bans, duplicates settled on the smaller initiator's key), whom to
/// dial (bootstrap, then the peer table with backoff and per-source dial budgets), rotation, push with duplicate
/// suppression along the path, anti-entropy rounds and their answers, WANT, peer exchange, scores and bans.
public struct GossipCore {
    public let settings: GossipSettings
    public let selfKey: [UInt8]
    public let selfHex: String
    let catalog: any GossipCatalog
    public var random: GossipRandom
    public var bootstrap: [PeerAddress]
    public internal(set) var table: PeerTable
    /// Live links by peer key (hex).
    public private(set) var links: [String: GossipLink] = [:]
    /// Items waiting for what they depend on (at most `GossipLimits.maxPending`).
    public private(set) var pending: [ContentHash: CatalogItem] = [:]
    /// Ids this node already pushed or was pushed (so an item is pushed once); cleared past `maxHandled`.
    var handled: Set<ContentHash> = []
    var lastSeq: Int
    /// Ids asked for and not yet received: whom, when, and who else reported holding them (a node back from
    /// offline reconciles with every peer at once; each id is asked of one peer, not of all).
    var wants: [ContentHash: Want] = [:]
    /// When each link last delivered items: a peer still working through a long WANT (its answers queue behind one
    /// another) is not timed out while it delivers.
    var lastDelivery: [String: Double] = [:]
    public internal(set) var counters = GossipCounters()
    var recentItems: [String] = []
    /// Keys whose traffic is dropped (the test partition switch).
    public private(set) var droppedKeys: Set<String> = []
    var lastRotation: Double
    /// Set on graceful shutdown: every link is closed and no new one is taken.
    public private(set) var stopping = false

    /// Addresses in one PEERS answer (of the wire limit of 64): the most recently seen.
    public static let peersPerAnswer = 32
    /// Ids remembered as already pushed before the set is cleared.
    public static let maxHandled = 100_000
    /// Items whose ITEMS sends are counted (the state file's `itemSends`).
    public static let maxCountedItems = 256
    /// A peer whose score falls to this is disconnected and banned for `banSeconds`.
    public static let banScore = -20.0
    public static let banSeconds = 600.0
    /// Score change for an invalid item, and for a new valid one.
    public static let faultPenalty = 5.0
    public static let validReward = 0.1
    /// Reconciliation rounds answered in one exchange.
    public static let maxReconcileRounds: UInt32 = 40
    /// Seconds an id asked of one peer (WANT) is not asked of another while that peer delivers nothing; past it, or
    /// when that link goes, the id is asked of the next peer that reported holding it.
    public static let wantSeconds = 5.0
    /// Ids remembered as asked for (beyond it, ids are asked for without remembering).
    public static let maxWants = 300_000
    /// Other peers remembered per asked id, to ask on a timeout.
    public static let maxWantAlternates = 3

    public init(
        catalog: any GossipCatalog, selfKey: [UInt8], bootstrap: [PeerAddress], settings: GossipSettings,
        random: GossipRandom, now: Double
    ) {
        self.catalog = catalog
        self.selfKey = selfKey
        self.selfHex = Hex.encode(selfKey)
        self.bootstrap = bootstrap
        self.settings = settings
        self.random = random
        table = PeerTable(limits: settings.table)
        lastSeq = catalog.lastItemSeq
        lastRotation = now
    }

    /// Seconds between firings of `timer`.
    public func interval(of timer: GossipTimer) -> Double {
        switch timer {
        case .maintain: return 1.0
        case .poll: return settings.pollSeconds
        case .antiEntropy: return settings.antiEntropySeconds
        case .peerExchange: return settings.peerExchangeSeconds
        }
    }

    /// Live links in key order (the order every decision starts from).
    public var sortedLinks: [GossipLink] { links.values.sorted { $0.keyHex < $1.keyHex } }

    public func link(_ id: LinkID) -> GossipLink? {
        links.values.first { $0.id == id }
    }

    // MARK: - Events

    /// A timer fired.
    public mutating func fire(_ timer: GossipTimer, now: Double) -> [GossipAction] {
        var out: [GossipAction] = []
        switch timer {
        case .maintain: maintain(now: now, into: &out)
        case .poll: pollLocal(now: now, into: &out)
        case .antiEntropy:
            let all = sortedLinks
            if !all.isEmpty, let index = try? catalog.itemIndex() {
                let link = all[Int.random(in: 0..<all.count, using: &random)]
                send(.reconcile(round: 0, ranges: Reconciler.open(index)), to: link.keyHex, now: now, into: &out)
            }
        case .peerExchange:
            let all = sortedLinks
            if !all.isEmpty {
                let link = all[Int.random(in: 0..<all.count, using: &random)]
                send(.peersQuery, to: link.keyHex, now: now, into: &out)
            }
        }
        return out
    }

    /// An authenticated connection to `key`. Returns whether to keep it (if not, the driver tells the peer it is
    /// overloaded and closes): refused when stopping, partitioned, banned, over the inbound cap, or a crossed dial
    /// that loses to the existing link (both sides keep the one initiated by the smaller key).
    public mutating func connected(
        id: LinkID, key: [UInt8], outbound: Bool, address: PeerAddress?, now: Double
    ) -> (accepted: Bool, actions: [GossipAction]) {
        let hex = Hex.encode(key)
        var out: [GossipAction] = []
        if stopping || droppedKeys.contains(hex) { return (false, out) }
        if let entry = table[hex], entry.bannedUntil > now { return (false, out) }
        if !outbound && links.values.filter({ !$0.outbound }).count >= settings.inboundCap { return (false, out) }
        if let existing = links[hex] {
            let keepNew = (outbound ? selfKey : key).lexicographicallyPrecedes(existing.outbound ? selfKey : key)
            if !keepNew { return (false, out) }
            out.append(.close(existing.id))
        }
        links[hex] = GossipLink(
            id: id, key: key, keyHex: hex, outbound: outbound, address: address, since: now, lastSent: now)
        if let address { table.connected(key: hex, address: address, dialled: outbound, now: now) }
        // A fresh connection: reconcile at once (a node back from offline catches up now), and learn its peers while
        // this node knows few (rotation makes new links all the time; the periodic exchange is enough after that).
        if table.count < 4 * settings.outboundTarget { send(.peersQuery, to: hex, now: now, into: &out) }
        send(
            .reconcile(round: 0, ranges: Reconciler.open((try? catalog.itemIndex()) ?? ItemIndex())), to: hex, now: now,
            into: &out
        )
        return (true, out)
    }

    /// A connection ended (either side closed it, or it failed).
    public mutating func disconnected(id: LinkID, key: [UInt8]) {
        let hex = Hex.encode(key)
        if links[hex]?.id == id {
            links.removeValue(forKey: hex)
            lastDelivery.removeValue(forKey: hex)
        }
    }

    /// A dial the core asked for failed before a handshake.
    public mutating func dialFailed(_ address: PeerAddress) {
        for (hex, entry) in table.entries where entry.host == address.host && entry.port == address.port {
            table[hex]?.failures += 1
        }
    }

    /// The test partition switch: traffic with these keys is dropped and their links closed.
    public mutating func setDropped(_ keys: Set<String>) -> [GossipAction] {
        droppedKeys = keys
        return sortedLinks.filter { keys.contains($0.keyHex) }.map { .close($0.id) }
    }

    /// Graceful shutdown: every link is closed and no new one is taken.
    public mutating func stop() -> [GossipAction] {
        stopping = true
        let out = sortedLinks.map { GossipAction.close($0.id) }
        links.removeAll()
        return out
    }

    /// Items this node made (a cosignature, an availability statement): offered to the catalog and pushed.
    public mutating func publishOwn(_ items: [CatalogItem], now: Double) -> [GossipAction] {
        var out: [GossipAction] = []
        var fresh: [CatalogItem] = []
        for item in items {
            if let new = offer(item, from: nil, now: now, into: &out) { fresh += new }
        }
        push(fresh, path: [], except: nil, now: now, into: &out)
        return out
    }

    /// A gossip message arrived on link `id` from `key`.
    public mutating func receive(_ message: WireMessage, from id: LinkID, key: [UInt8], now: Double) -> [GossipAction] {
        let hex = Hex.encode(key)
        var out: [GossipAction] = []
        counters.received[Self.name(of: message), default: 0] += 1
        counters.bytesReceived += message.encodedPayload.count + 5
        NodeMetrics.gossipMessage(sent: false, type: Self.name(of: message), bytes: message.encodedPayload.count + 5)
        if droppedKeys.contains(hex) { return [.close(id)] }
        // A superseded or rotated-out link still delivering: its answers are not needed.
        guard links[hex]?.id == id else { return out }
        table[hex]?.lastSeen = now
        switch message {
        case .items(let path, let items):
            receive(items, path: path, from: hex, now: now, into: &out)
        case .reconcile(let round, let ranges):
            counters.reconcileRounds += 1
            let step: Reconciler.Step
            do { step = try Reconciler.step(try catalog.itemIndex(), message: ranges) } catch let e as GossipError {
                fault(hex, "bad RECONCILE: \(e)", now: now, into: &out)
                return out
            } catch { return out }
            if !step.theyLack.isEmpty, let items = try? catalog.items(step.theyLack) {
                sendItems(items, path: [], to: hex, now: now, into: &out)
            }
            if !step.weLack.isEmpty { want(step.weLack, from: hex, now: now, into: &out) }
            if let reply = step.reply, round < Self.maxReconcileRounds {
                send(.reconcile(round: round &+ 1, ranges: reply), to: hex, now: now, into: &out)
            }
        case .want(let ids):
            if let items = try? catalog.items(ids) { sendItems(items, path: [], to: hex, now: now, into: &out) }
        case .peersQuery:
            var records: [PeerRecord] = []
            let fresh = table.entries.values.filter {
                $0.key != hex && now - $0.lastSeen < 24 * 3600 && PeerTable.isDialable(host: $0.host, port: $0.port)
            }
            .sorted { ($0.lastSeen, $0.key) > ($1.lastSeen, $1.key) }
            for e in fresh.prefix(Self.peersPerAnswer) {
                guard let key = Hex.decode(e.key), key.count == 32, e.host.utf8.count < 256 else { continue }
                records.append(
                    PeerRecord(nodeKey: key, host: e.host, port: UInt16(e.port), lastSeen: UInt64(max(0, e.lastSeen))))
            }
            send(.peers(records), to: hex, now: now, into: &out)
        case .peers(let records):
            // PEERS answers a PEERS_QUERY; one nobody asked for is a protocol violation (Protocol/gossip-v1.md).
            guard let link = links[hex], link.peersQueries > 0 else {
                out.append(.fail(id, WireError(.protocolViolation, "PEERS without a PEERS_QUERY")))
                return out
            }
            links[hex]?.peersQueries -= 1
            _ = table.learn(records, from: hex, selfKey: selfHex, now: now)
        default:
            break
        }
        return out
    }

    // MARK: - Queries

    /// Listen addresses of connected peers and of table entries, by node key (hex).
    public func addresses() -> [String: PeerAddress] {
        var out: [String: PeerAddress] = [:]
        for (hex, e) in table.entries where e.port > 0 { out[hex] = PeerAddress(host: e.host, port: e.port) }
        for (hex, l) in links { if let a = l.address { out[hex] = a } }
        return out
    }

    /// Node keys (hex) known to be up: this node, connected peers, and table entries seen within `seconds`.
    public func liveNodes(within seconds: Double, now: Double) -> Set<String> {
        var out = Set(links.keys)
        out.insert(selfHex)
        for (hex, e) in table.entries where now - e.lastSeen <= seconds && !droppedKeys.contains(hex) {
            out.insert(hex)
        }
        return out
    }

    // MARK: - Decisions

    /// Keeps `outboundTarget` outbound connections: bootstrap addresses first while no outbound link is up, then the
    /// peer table, scores at or above zero first, with exponential backoff after failures; rotates one outbound
    /// slot every `rotateSeconds` when all are full, so the overlay keeps mixing and a healed partition reconnects.
    mutating func maintain(now: Double, into out: inout [GossipAction]) {
        var outboundLinks = sortedLinks.filter(\.outbound)
        if !outboundLinks.isEmpty, outboundLinks.count >= settings.outboundTarget,
            now - lastRotation >= settings.rotateSeconds
        {
            let victim = outboundLinks.remove(at: Int.random(in: 0..<outboundLinks.count, using: &random))
            lastRotation = now
            links.removeValue(forKey: victim.keyHex)
            out.append(.close(victim.id))
        }
        keepAlive(now: now, into: &out)
        retryWants(now: now, into: &out)
        guard !stopping, outboundLinks.count < settings.outboundTarget else { return }
        let slots = settings.outboundTarget - outboundLinks.count
        var dials: [PeerAddress] = []
        let connectedAddresses = Set(links.values.compactMap(\.address))
        // Bootstrap addresses while this node has no outbound link, even if peers have dialled in: a group of nodes
        // that bootstrapped to one another would otherwise stay an island for ever (the simulator found that:
        // fidelity scenario, seed 1, when inbound links arrived before the first dial).
        if outboundLinks.isEmpty {
            dials += bootstrap.filter { !connectedAddresses.contains($0) }.prefix(slots)
        }
        var candidates = table.entries.values.filter {
            $0.key != selfHex && links[$0.key] == nil && $0.bannedUntil < now && !droppedKeys.contains($0.key)
                && now - $0.lastAttempt >= min(60, Double(1 << min(6, $0.failures)))
        }.sorted { $0.key < $1.key }
        candidates.shuffle(using: &random)
        // Stable: among equals the shuffled order stands.
        let ranked = candidates.filter { $0.score >= 0 } + candidates.filter { $0.score < 0 }
        for entry in ranked where dials.count < slots {
            // An address a peer named is dialled only within that peer's dial budget.
            guard table.spendDial(entry.key, now: now) else { continue }
            dials.append(PeerAddress(host: entry.host, port: entry.port))
        }
        for address in dials {
            for (hex, e) in table.entries where e.host == address.host && e.port == address.port {
                table[hex]?.lastAttempt = now
            }
            out.append(.dial(address))
        }
    }

    /// Wire v1 closes a connection that receives no complete frame for `idleTimeout`. A gossip link this node has
    /// sent nothing on for half of that gets an anti-entropy round (one RECONCILE frame), so quiet links stay open.
    mutating func keepAlive(now: Double, into out: inout [GossipAction]) {
        let quiet = sortedLinks.filter { now - $0.lastSent >= settings.idleTimeoutSeconds / 2 }
        guard !quiet.isEmpty, let index = try? catalog.itemIndex() else { return }
        let open = Reconciler.open(index)
        for link in quiet { send(.reconcile(round: 0, ranges: open), to: link.keyHex, now: now, into: &out) }
    }

    struct Want {
        var peer: String
        var at: Double
        var others: [String] = []
    }

    /// Asks `hex` for the ids a reconciliation found missing, except those pending and those already asked of another
    /// live link less than `wantSeconds` ago (that link is remembered as a holder to ask on a timeout).
    mutating func want(_ ids: [ContentHash], from hex: String, now: Double, into out: inout [GossipAction]) {
        var ask: [ContentHash] = []
        for id in ids where pending[id] == nil {
            if var w = wants[id], links[w.peer] != nil, now - w.at < Self.wantSeconds {
                if w.peer != hex && w.others.count < Self.maxWantAlternates && !w.others.contains(hex) {
                    w.others.append(hex)
                    wants[id] = w
                }
                continue
            }
            if wants.count < Self.maxWants || wants[id] != nil { wants[id] = Want(peer: hex, at: now) }
            ask.append(id)
        }
        sendWants(ask, to: hex, now: now, into: &out)
    }

    mutating func sendWants(_ ids: [ContentHash], to hex: String, now: Double, into out: inout [GossipAction]) {
        for part in stride(from: 0, to: ids.count, by: GossipLimits.maxWant) {
            send(.want(Array(ids[part..<min(ids.count, part + GossipLimits.maxWant)])), to: hex, now: now, into: &out)
        }
    }

    /// Asked ids not received within `wantSeconds`, or whose link went: asked of the next live peer that reported
    /// holding them, else forgotten (the next reconciliation finds them again).
    mutating func retryWants(now: Double, into out: inout [GossipAction]) {
        guard !wants.isEmpty else {
            lastDelivery.removeAll()
            return
        }
        var again: [String: [ContentHash]] = [:]
        let due = wants.filter {
            now - max($0.value.at, lastDelivery[$0.value.peer] ?? 0) >= Self.wantSeconds || links[$0.value.peer] == nil
        }
        for (id, w) in due.sorted(by: { $0.key < $1.key }) {
            if pending[id] != nil || (try? catalog.hasItem(id)) == true {
                wants.removeValue(forKey: id)
                continue
            }
            guard let next = w.others.first(where: { links[$0] != nil }) else {
                wants.removeValue(forKey: id)
                continue
            }
            wants[id] = Want(peer: next, at: now, others: w.others.filter { $0 != next && $0 != w.peer })
            again[next, default: []].append(id)
        }
        for (hex, ids) in again.sorted(by: { $0.key < $1.key }) { sendWants(ids, to: hex, now: now, into: &out) }
    }

    /// Items someone else added to the catalog since the last look.
    mutating func pollLocal(now: Double, into out: inout [GossipAction]) {
        guard let (items, last) = try? catalog.items(after: lastSeq, limit: 1024) else { return }
        lastSeq = last
        let fresh = items.filter { !handled.contains($0.id) }
        if !fresh.isEmpty { push(fresh, path: [], except: nil, now: now, into: &out) }
        if handled.count > Self.maxHandled { handled.removeAll() }
    }

    mutating func send(_ message: WireMessage, to hex: String, now: Double, into out: inout [GossipAction]) {
        guard let link = links[hex] else { return }
        counters.sent[Self.name(of: message), default: 0] += 1
        counters.bytesSent += message.encodedPayload.count + 5
        NodeMetrics.gossipMessage(sent: true, type: Self.name(of: message), bytes: message.encodedPayload.count + 5)
        links[hex]?.lastSent = now
        if case .peersQuery = message { links[hex]?.peersQueries += 1 }
        out.append(.send(message, to: link.id))
    }

    public static func name(of message: WireMessage) -> String {
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
    mutating func sendItems(
        _ items: [CatalogItem], path: [[UInt8]], to hex: String, now: Double, into out: inout [GossipAction]
    ) {
        for item in items {
            let key = String(item.id.hex.prefix(16))
            if counters.itemSends[key] == nil {
                recentItems.append(key)
                if recentItems.count > Self.maxCountedItems {
                    counters.itemSends.removeValue(forKey: recentItems.removeFirst())
                }
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
                send(.items(path: path, items: batch), to: hex, now: now, into: &out)
                batch = []
                bytes = 0
            }
            batch.append(item)
            bytes += item.body.count + 5
        }
        if !batch.isEmpty { send(.items(path: path, items: batch), to: hex, now: now, into: &out) }
    }

    /// Pushes new items to `fanout` connected peers that are not in `path` and not `except`; the path sent on names
    /// this node and every chosen target, so they do not pick each other.
    mutating func push(
        _ items: [CatalogItem], path: [[UInt8]], except: String?, now: Double, into out: inout [GossipAction]
    ) {
        guard !items.isEmpty else { return }
        for item in items { handled.insert(item.id) }
        let seen = Set(path.map { Hex.encode($0) })
        var eligible = sortedLinks.filter { $0.keyHex != except && !seen.contains(Hex.encode($0.prefix)) }
        eligible.shuffle(using: &random)
        let targets = Array(eligible.prefix(settings.fanout))
        guard !targets.isEmpty else { return }
        var newPath = path + [Array(selfKey.prefix(8))] + targets.map(\.prefix)
        if newPath.count > GossipLimits.maxPathEntries {
            newPath = Array(newPath.suffix(GossipLimits.maxPathEntries))
        }
        for target in targets { sendItems(items, path: newPath, to: target.keyHex, now: now, into: &out) }
        if settings.lazyPushLinks > 0 {
            let ids = items.map(\.id)
            for part in stride(from: 0, to: ids.count, by: Reconciler.maxAnnounced) {
                let announce = Reconciler.announce(Array(ids[part..<min(ids.count, part + Reconciler.maxAnnounced)]))
                for link in eligible.dropFirst(targets.count).prefix(settings.lazyPushLinks) {
                    send(.reconcile(round: 0, ranges: announce), to: link.keyHex, now: now, into: &out)
                }
            }
        }
    }

    mutating func receive(
        _ items: [CatalogItem], path: [[UInt8]], from hex: String, now: Double, into out: inout [GossipAction]
    ) {
        var fresh: [CatalogItem] = []
        if !wants.isEmpty { lastDelivery[hex] = now }
        for item in items {
            wants.removeValue(forKey: item.id)
            if let new = offer(item, from: hex, now: now, into: &out) { fresh += new }
            if links[hex] == nil { return }  // banned on the way
        }
        guard !fresh.isEmpty else { return }
        fresh += retryPending(now: now, into: &out)
        if path.isEmpty {
            // Learned by repair (an answer to reconciliation or WANT), not by push: the push wave for these is under
            // way or over, and anti-entropy reaches whoever it missed, so pass on only what this node made itself
            // from them (an equivocation proof). This keeps an announcement at most `fanout` messages per node.
            // They count as handled, or the next poll of the catalog would push them as if this node had made them
            // (the simulator found that: seed 1 of the faults scenario).
            for item in fresh { handled.insert(item.id) }
            let received = Set(items.map(\.id))
            fresh = fresh.filter { $0.kind == .equivocation && !received.contains($0.id) }
            if fresh.isEmpty { return }
        }
        push(fresh, path: path, except: hex, now: now, into: &out)
    }

    /// Offers one item to the catalog; returns the items to pass on (nil if none). Faults count against `from`.
    mutating func offer(
        _ item: CatalogItem, from hex: String?, now: Double, into out: inout [GossipAction]
    )
        -> [CatalogItem]?
    {
        // Outcomes are counted here and in the node's metrics (a process-wide sink, no I/O; a no-op unless `node run`
        // bootstrapped it, so the simulator's many cores in one process count nothing there).
        let kind = "\(item.kind)"
        do {
            switch try catalog.accept(item) {
            case .added(let derived):
                counters.itemsAdded += 1
                NodeMetrics.gossipItem(kind: kind, outcome: "added")
                if let hex { table[hex]?.score += Self.validReward }
                return [item] + derived
            case .conflict(let derived):
                counters.itemsConflicting += 1
                NodeMetrics.gossipItem(kind: kind, outcome: "conflict")
                out.append(
                    .warn(
                        "overwrite attempt seen: conflicting signed \(item.kind) items \(item.id.hex.prefix(16)); "
                            + "proof stored and passed on", peer: hex))
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
            counters.itemsRefused += 1
            NodeMetrics.gossipItem(kind: kind, outcome: "refused")
            return nil
        } catch let error as ManifestError where error.code == .equivocation {
            // A publisher's own log rebinding a release: evidence, not the relaying peer's fault.
            counters.itemsConflicting += 1
            NodeMetrics.gossipItem(kind: kind, outcome: "conflict")
            return nil
        } catch {
            counters.itemsInvalid += 1
            NodeMetrics.gossipItem(kind: kind, outcome: "invalid")
            if let hex { fault(hex, "invalid \(item.kind) item: \(error)", now: now, into: &out) }
            return nil
        }
    }

    /// Items waiting for what they depend on, offered again until no more can be added.
    mutating func retryPending(now: Double, into out: inout [GossipAction]) -> [CatalogItem] {
        var result: [CatalogItem] = []
        var progress = true
        while progress && !pending.isEmpty {
            progress = false
            let ordered = pending.sorted { ($0.value.kind, $0.key) < ($1.value.kind, $1.key) }
            for (id, item) in ordered {
                guard let new = offer(item, from: nil, now: now, into: &out) else {
                    if (try? catalog.hasItem(id)) == true { pending.removeValue(forKey: id) }
                    continue
                }
                pending.removeValue(forKey: id)
                result += new
                progress = true
            }
        }
        return result
    }

    /// Lowers a peer's score; past `banScore` the link fails and the peer is banned for `banSeconds`.
    mutating func fault(_ hex: String, _ why: String, now: Double, into out: inout [GossipAction]) {
        guard let link = links[hex] else { return }
        var entry =
            table[hex]
            ?? PeerEntry(key: hex, host: link.address?.host ?? "", port: link.address?.port ?? 0, lastSeen: now)
        entry.score -= Self.faultPenalty
        out.append(.warn("peer sent a bad item: \(why)", peer: hex))
        if entry.score <= Self.banScore {
            entry.bannedUntil = now + Self.banSeconds
            table[hex] = entry
            links.removeValue(forKey: hex)
            out.append(.fail(link.id, WireError(.protocolViolation, "too many invalid items")))
            return
        }
        table[hex] = entry
    }

    /// Loads saved table entries (the driver reads the file).
    public mutating func load(_ entries: [PeerEntry]) {
        for e in entries.prefix(table.limits.maxEntries) where e.key != selfHex { table[e.key] = e }
    }
}
