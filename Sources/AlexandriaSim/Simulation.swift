import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaPeer
import AlexandriaWire
import Foundation

/// What a simulated network looks like and which faults it suffers. Times are simulated seconds.
public struct SimConfig: Sendable {
    public var seed: UInt64 = 1
    public var nodes = 50
    /// Nodes find each other during the warm-up; publishes and faults run for `duration`; then every fault stops
    /// (partitions heal, crashed nodes restart, loss ends, attackers go quiet) and the network has `settle` to
    /// converge.
    public var warmup = 20.0
    public var duration = 60.0
    public var settle = 60.0
    /// Seconds between publishes (0: none). Each publish is a release: a log entry, a manifest and a checkpoint.
    public var publishInterval = 1.0
    public var publishers = 20
    /// Per-message one-way delay: lognormal with this median and sigma, plus serialization on the sender's uplink and
    /// the receiver's downlink, each a queue.
    public var latencyMedian = 0.05
    public var latencySigma = 0.5
    public var uplinkBytesPerSecond = 12_500_000.0 {
        didSet { downlinkBytesPerSecond = uplinkBytesPerSecond }
    }
    /// The same as the uplink unless set after it.
    public var downlinkBytesPerSecond = 12_500_000.0
    /// Faults during `duration`.
    public var loss = 0.0
    public var duplication = 0.0
    /// Deliver messages of one connection out of order (TCP never does; this tests the core beyond it).
    public var reorder = false
    /// Split the network in two halves for the middle third of `duration`.
    public var partition = false
    /// Crashes per node per hour (each restarts after an exponential downtime of mean `downtimeMean`).
    public var churnPerHour = 0.0
    public var downtimeMean = 600.0
    /// Fraction of restarts that come back with an empty catalog (the store was lost).
    public var lostStore = 0.0
    /// Each node's clock is off by up to this many seconds, either way.
    public var clockSkew = 0.0
    /// Byzantine nodes (taken from the highest indexes): they run the honest core and add an attack.
    public var forgers = 0
    public var flooders = 0
    public var liars = 0
    /// Publishes in which the publisher signs two manifests for one release and hands them to two nodes at once.
    public var equivocations = 0
    /// Releases every node already holds at the start (shared, in sync).
    public var baseReleases = 0
    /// Item sizes of one release: log entry, manifest, checkpoint (bytes, measured on real items).
    public var itemSizes = [655, 1130, 334]
    public var gossip = GossipSettings()
    /// Node 0 was offline while this many of the base releases were published (the last ones): it starts with the
    /// rest, joins at the end of the warm-up, and the run measures how long it takes to hold everything.
    public var catchUpReleases = 0
    /// Seconds over which the nodes start, at most 10 ms apart (the first node at 0).
    public var startSpread = 10.0
    /// Each node starts with this many random earlier nodes as bootstrap addresses.
    public var bootstrapPeers = 3
    /// Bootstrap addresses are drawn from the first this-many nodes (0: from every earlier node).
    public var bootstrapFirst = 0
    /// The publisher's core looks at its catalog right after a publish (instead of at its next poll), so large runs
    /// can poll rarely: each node's 10 polls a second would otherwise be most of the simulated steps.
    public var pollOnPublish = false
    public init() {}
}

/// One simulated network: N `GossipCore`s on simulated time and a simulated network, deterministic from the seed.
/// No clock, no sockets, no dictionary order in any decision: one seeded generator drives the network, and each
/// core gets its own generator seeded from it.
public final class Simulation {
    enum Role: Equatable { case honest, forger, flooder, liar }

    struct Node {
        var key: [UInt8]
        var hex: String
        var address: PeerAddress
        var core: GossipCore
        var catalog: SimCatalog
        var alive = true
        var epoch = 0
        var upSince = 0.0
        var skew = 0.0
        var role = Role.honest
        var bootstrap: [PeerAddress]
    }

    struct Conn {
        let a: Int
        let b: Int
        var open = [true, true]
        var lastArrival = [0.0, 0.0]
        var inFlight = [0, 0]
        func side(_ node: Int) -> Int { node == a ? 0 : 1 }
        func other(_ node: Int) -> Int { node == a ? b : a }
    }

    enum Event {
        case timer(Int, GossipTimer, epoch: Int)
        case deliver(conn: Int, to: Int, WireMessage)
        case dialDone(from: Int, epoch: Int, address: PeerAddress)
        case dialFailed(from: Int, epoch: Int, address: PeerAddress)
        case closed(conn: Int, node: Int)
        case publish
        case crash(Int)
        case restart(Int, lost: Bool)
        case partition(Bool)
        case attack(Int)
        case faultsEnd
        case check
    }

    public let config: SimConfig
    var random: GossipRandom
    var queue = EventQueue<Event>()
    public private(set) var now = 0.0
    var nodes: [Node] = []
    var byHost: [String: Int] = [:]
    /// Per node, outside `nodes` so the arrival hook can read them while a core runs.
    var upSince: [Double] = []
    var roles: [Role] = []
    var conns: [Int: Conn] = [:]
    var nextConn = 1
    let pool = SimItemPool()
    var partitioned = false
    var faultsOn = true
    var publishes = 0
    var nextRelease: UInt32 = 0
    var publisherKeysSent: Set<UInt32> = []
    var baseIDs: [ContentHash] = []
    /// When each node's uplink and downlink are next free (simulated seconds).
    var uplinkFreeAt: [Double] = []
    var downlinkFreeAt: [Double] = []
    var baseSummary: (count: Int, sum: IDSum) = (0, .zero)
    var baseBytes = 0

    // Measures.
    public private(set) var steps = 0
    public private(set) var failures: [String] = []
    var tracked: [ContentHash: Int] = [:]
    var announced: [(time: Double, node: Int)] = []
    var delays: [Double] = []
    var reached: [Int] = []
    var itemMessages: [Int] = []
    var itemBytes: [Int] = []
    var announceMessages: [Int] = []
    var totalBytes = 0
    var messages = 0
    var dropped = 0
    var maxOutbound = 0
    var maxPending = 0
    var equivocated: [(publisher: UInt32, release: UInt32)] = []
    var convergedAt: Double?
    var catchUpDone: Double?
    /// Item bytes delivered to the node catching up until it held everything (against what it lacked).
    var catchUpItemBytes = 0
    var catchUpNeededBytes = 0
    var faultsEndedAt = 0.0

    public init(_ config: SimConfig) {
        self.config = config
        random = GossipRandom(seed: config.seed)
        build()
    }

    // MARK: - Setup

    func makeAddress(_ i: Int) -> PeerAddress {
        PeerAddress(host: "10.\(i >> 16 & 255).\(i >> 8 & 255).\(i & 255)", port: 7000)
    }

    func build() {
        // The base catalog, shared copy-on-write by every node.
        var base: [ContentHash] = []
        var publishers: Set<UInt32> = []
        if config.baseReleases > 0 {
            for p in 0..<UInt32(config.publishers) {
                let key = SimItem.make(.publisherKey, publisher: p, release: 0, size: 91)
                base.append(add(key))
                publishers.insert(p)
                publisherKeysSent.insert(p)
            }
            for r in 0..<config.baseReleases {
                for item in releaseItems(publisher: UInt32(r % config.publishers), release: UInt32(r)) {
                    base.append(add(item))
                }
            }
            nextRelease = UInt32(config.baseReleases)
        }
        base.sort()
        baseIDs = base
        let baseIndex = ItemIndex(sorted: base)
        baseSummary = (baseIndex.count, baseIndex.sum)
        baseBytes = base.reduce(0) { $0 + (pool[$1]?.body.count ?? 0) + 33 }
        let byzantine = config.forgers + config.flooders + config.liars
        for i in 0..<config.nodes {
            var key = [UInt8](repeating: 0, count: 32)
            for j in 0..<4 { withUnsafeBytes(of: random.next()) { key.replaceSubrange(j * 8..<j * 8 + 8, with: $0) } }
            let address = makeAddress(i)
            byHost[address.host] = i
            var boot: [PeerAddress] = []
            if i > 0 {
                let pool = config.bootstrapFirst > 0 ? min(i, config.bootstrapFirst) : i
                for _ in 0..<config.bootstrapPeers {
                    boot.append(makeAddress(Int.random(in: 0..<pool, using: &random)))
                }
            }
            var mine = baseIndex
            if i == 0 && config.catchUpReleases > 0 {
                var missing: Set<ContentHash> = []
                for r in max(0, config.baseReleases - config.catchUpReleases)..<config.baseReleases {
                    for item in releaseItems(publisher: UInt32(r % config.publishers), release: UInt32(r)) {
                        missing.insert(item.id)
                    }
                }
                mine = ItemIndex(sorted: base.filter { !missing.contains($0) })
                catchUpNeededBytes = missing.reduce(0) { $0 + (pool[$1]?.body.count ?? 0) + 5 }
            }
            let catalog = SimCatalog(pool: pool, base: mine, publishers: publishers, bytes: baseBytes)
            let core = GossipCore(
                catalog: catalog, selfKey: key, bootstrap: boot, settings: config.gossip,
                random: GossipRandom(seed: random.next()), now: 0)
            var node = Node(
                key: key, hex: Hex.encode(key), address: address, core: core, catalog: catalog, bootstrap: boot)
            node.skew =
                config.clockSkew > 0 ? Double.random(in: -config.clockSkew...config.clockSkew, using: &random) : 0
            let b = config.nodes - 1 - i
            if b < config.forgers {
                node.role = .forger
            } else if b < config.forgers + config.flooders {
                node.role = .flooder
            } else if b < byzantine {
                node.role = .liar
            }
            nodes.append(node)
            upSince.append(0)
            uplinkFreeAt.append(0)
            downlinkFreeAt.append(0)
            roles.append(node.role)
            hook(i)
        }
        for i in 0..<config.nodes {
            if i == 0 && config.catchUpReleases > 0 {
                // Offline until the warm-up ends; then it comes back knowing a few addresses.
                nodes[0].alive = false
                nodes[0].bootstrap = (0..<8).map { _ in makeAddress(Int.random(in: 1..<config.nodes, using: &random)) }
                queue.push(config.warmup, .restart(0, lost: false))
                queue.push(config.warmup, .check)
            } else {
                // Nodes start one after another, 10 ms apart, but all within `startSpread`: at 10 ms apart the last
                // of 10,000 nodes started 100 s in, after a 40 s warm-up and 30 s of publishing, and the nodes not yet
                // started counted as the delivery tail and as not converged (the 10,000-node figures before this).
                let at = Double(i) * min(0.01, config.startSpread / Double(config.nodes))
                upSince[i] = at
                nodes[i].upSince = at
                startTimers(i, at: at)
            }
            if nodes[i].role == .forger || nodes[i].role == .flooder { queue.push(config.warmup, .attack(i)) }
        }
        if config.publishInterval > 0 { queue.push(config.warmup, .publish) }
        let end = config.warmup + config.duration
        if config.partition {
            queue.push(config.warmup + config.duration / 3, .partition(true))
            queue.push(config.warmup + 2 * config.duration / 3, .partition(false))
        }
        if config.churnPerHour > 0 {
            for i in 0..<config.nodes { scheduleCrash(i, after: config.warmup) }
        }
        queue.push(end, .faultsEnd)
    }

    func add(_ item: CatalogItem) -> ContentHash {
        let id = item.id
        pool.add(item, id: id)
        return id
    }

    func releaseItems(publisher: UInt32, release: UInt32, variant: UInt32 = 0) -> [CatalogItem] {
        let s = config.itemSizes
        return [
            SimItem.make(.logEntry, publisher: publisher, release: release, variant: variant, size: s[0]),
            SimItem.make(.manifest, publisher: publisher, release: release, variant: variant, size: s[1]),
            SimItem.make(.checkpoint, publisher: publisher, release: release, variant: variant, size: s[2]),
        ]
    }

    func hook(_ i: Int) {
        nodes[i].catalog.onAdd = { [unowned self] id in
            guard let k = self.tracked[id] else { return }
            self.reached[k] += 1
            // Not `nodes`: the core that is adding the item holds it for writing.
            if self.upSince[i] <= self.announced[k].time && self.roles[i] == .honest
                && i != self.announced[k].node
            {
                self.delays.append(self.now - self.announced[k].time)
            }
        }
    }

    func startTimers(_ i: Int, at t: Double) {
        for timer in GossipTimer.allCases {
            let interval = nodes[i].core.interval(of: timer)
            queue.push(t + Double.random(in: 0..<interval, using: &random), .timer(i, timer, epoch: nodes[i].epoch))
        }
    }

    func scheduleCrash(_ i: Int, after t: Double) {
        let rate = config.churnPerHour / 3600
        let wait = -log(1 - Double.random(in: 0..<1, using: &random)) / rate
        queue.push(t + wait, .crash(i))
    }

    // MARK: - Running

    /// Runs to the end; returns the report. Invariants are checked after every step; a violation is recorded in
    /// `failures` with the time (the seed replays it).
    public func run() -> SimReport {
        let end = config.warmup + config.duration + config.settle
        while let (t, event) = queue.pop(), t <= end {
            now = t
            steps += 1
            handle(event)
            if failures.count > 20 { break }
        }
        now = end
        checkConvergence(final: true)
        return report()
    }

    func local(_ i: Int) -> Double { now + nodes[i].skew }

    func handle(_ event: Event) {
        switch event {
        case .timer(let i, let timer, let epoch):
            guard nodes[i].alive, nodes[i].epoch == epoch else { return }
            let actions = nodes[i].core.fire(timer, now: local(i))
            perform(i, actions)
            queue.push(now + nodes[i].core.interval(of: timer), .timer(i, timer, epoch: epoch))
            check(i)
        case .deliver(let c, let to, let message):
            guard var conn = conns[c] else { return }
            let side = conn.side(to)
            conn.inFlight[1 - side] -= 1
            conns[c] = conn
            guard conn.open[side], nodes[to].alive else { return }
            let from = conn.other(to)
            if to == 0 && config.catchUpReleases > 0 && catchUpDone == nil, case .items(_, let items) = message {
                catchUpItemBytes += items.reduce(0) { $0 + $1.body.count + 5 }
            }
            let actions = nodes[to].core.receive(message, from: c, key: nodes[from].key, now: local(to))
            perform(to, actions)
            check(to)
        case .dialDone(let from, let epoch, let address):
            guard nodes[from].alive, nodes[from].epoch == epoch else { return }
            guard let to = byHost[address.host], nodes[to].alive, reachable(from, to) else {
                nodes[from].core.dialFailed(address)
                return
            }
            connect(from, to)
        case .dialFailed(let from, let epoch, let address):
            guard nodes[from].alive, nodes[from].epoch == epoch else { return }
            nodes[from].core.dialFailed(address)
        case .closed(let c, let node):
            guard var conn = conns[c] else { return }
            let side = conn.side(node)
            if conn.open[side] {
                conn.open[side] = false
                if nodes[node].alive { nodes[node].core.disconnected(id: c, key: nodes[conn.other(node)].key) }
            }
            if !conn.open[0] && !conn.open[1] && conn.inFlight == [0, 0] {
                conns.removeValue(forKey: c)
            } else {
                conns[c] = conn
            }
        case .publish:
            publish()
            if faultsOn { queue.push(now + config.publishInterval, .publish) }
        case .crash(let i):
            guard faultsOn, nodes[i].alive else { return }
            crash(i)
            let down = -log(1 - Double.random(in: 0..<1, using: &random)) * config.downtimeMean
            let lost = Double.random(in: 0..<1, using: &random) < config.lostStore
            queue.push(now + down, .restart(i, lost: lost))
        case .restart(let i, let lost):
            guard !nodes[i].alive else { return }
            restart(i, lost: lost)
            if faultsOn && config.churnPerHour > 0 { scheduleCrash(i, after: now) }
        case .partition(let on):
            partitioned = on
            if on {
                for (c, conn) in conns.sorted(by: { $0.key < $1.key }) where !reachable(conn.a, conn.b) {
                    for n in [conn.a, conn.b] { queue.push(now, .closed(conn: c, node: n)) }
                }
            }
        case .attack(let i):
            guard faultsOn else { return }
            if nodes[i].alive { attack(i) }
            queue.push(now + (nodes[i].role == .flooder ? 0.2 : 2), .attack(i))
        case .faultsEnd:
            faultsOn = false
            faultsEndedAt = now
            partitioned = false
            for i in nodes.indices where !nodes[i].alive { restart(i, lost: false) }
            queue.push(now + 1, .check)
        case .check:
            if config.catchUpReleases > 0 && catchUpDone == nil {
                if nodes[0].catalog.count >= baseIDs.count, nodes[0].catalog.summary() == baseSummary {
                    catchUpDone = now - config.warmup
                } else {
                    queue.push(now + 0.25, .check)
                }
                return
            }
            checkConvergence(final: false)
            if convergedAt == nil { queue.push(now + 1, .check) }
        }
    }

    func reachable(_ a: Int, _ b: Int) -> Bool { !partitioned || a % 2 == b % 2 }

    func latency(bytes: Int, from: Int) -> Double {
        // Box-Muller from the one generator.
        let u1 = max(Double.random(in: 0..<1, using: &random), 1e-12)
        let u2 = Double.random(in: 0..<1, using: &random)
        let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return config.latencyMedian * exp(config.latencySigma * z) + Double(bytes) / config.uplinkBytesPerSecond
    }

    func connect(_ from: Int, _ to: Int) {
        let c = nextConn
        nextConn += 1
        conns[c] = Conn(a: from, b: to)
        let inbound = nodes[to].core.connected(
            id: c, key: nodes[from].key, outbound: false, address: nodes[from].address, now: local(to))
        let outbound = nodes[from].core.connected(
            id: c, key: nodes[to].key, outbound: true, address: nodes[to].address, now: local(from))
        if outbound.accepted { perform(from, outbound.actions) } else { close(c, by: from) }
        if inbound.accepted { perform(to, inbound.actions) } else { close(c, by: to) }
        check(from)
        check(to)
    }

    /// `node` closes its end; the other end learns after one latency.
    func close(_ c: Int, by node: Int) {
        guard var conn = conns[c] else { return }
        let side = conn.side(node)
        guard conn.open[side] else { return }
        conn.open[side] = false
        conns[c] = conn
        if nodes[node].alive { nodes[node].core.disconnected(id: c, key: nodes[conn.other(node)].key) }
        queue.push(now + latency(bytes: 0, from: node), .closed(conn: c, node: conn.other(node)))
    }

    func perform(_ i: Int, _ actions: [GossipAction]) {
        for action in actions {
            switch action {
            case .send(var message, let c):
                if nodes[i].role == .liar, case .peers(let records) = message {
                    // Lies about where peers are: addresses that answer nothing, under real keys.
                    message = .peers(
                        records.enumerated().map { n, r in
                            PeerRecord(
                                nodeKey: r.nodeKey, host: "10.255.\(n).\(Int.random(in: 1..<255, using: &random))",
                                port: 7000, lastSeen: UInt64(max(0, local(i))))
                        })
                }
                send(message, on: c, from: i)
            case .close(let c), .fail(let c, _):
                close(c, by: i)
            case .dial(let address):
                let to = byHost[address.host]
                if let to, nodes[to].alive, reachable(i, to) {
                    // The handshake: one and a half round trips.
                    let t = 3 * latency(bytes: 200, from: i)
                    queue.push(now + t, .dialDone(from: i, epoch: nodes[i].epoch, address: address))
                } else {
                    // Refused at once by a live host, or the connect timeout (3 s) when nothing answers.
                    let t = to.map { nodes[$0].alive && reachable(i, $0) } == true ? 2 * latency(bytes: 0, from: i) : 3
                    queue.push(now + t, .dialFailed(from: i, epoch: nodes[i].epoch, address: address))
                }
            case .warn:
                break
            }
        }
    }

    /// The driver's bounded per-link queue (512 messages, oldest kept) and the simulated network.
    func send(_ message: WireMessage, on c: Int, from i: Int) {
        guard var conn = conns[c] else { return }
        let side = conn.side(i)
        guard conn.open[side], conn.open[1 - side] || true else { return }
        let to = conn.other(i)
        let bytes = message.encodedPayload.count + 5
        messages += 1
        totalBytes += bytes
        if case .items(_, let items) = message {
            for item in items {
                if let k = tracked[item.id] {
                    itemMessages[k] += 1
                    itemBytes[k] += item.body.count + 5
                }
            }
        } else if case .reconcile(0, let ranges) = message, ranges.count > 1 {
            // A lazy push (an announcement of ids, `Reconciler.announce`) naming a tracked manifest.
            for case .ids(let ids) in ranges.map(\.mode) where ids.count == 1 {
                if let k = tracked[ids[0]] { announceMessages[k] += 1 }
            }
        }
        guard conn.inFlight[side] < 512 else {
            dropped += 1
            return
        }
        if faultsOn && config.loss > 0 && Double.random(in: 0..<1, using: &random) < config.loss {
            dropped += 1
            return
        }
        // The sender's uplink and the receiver's downlink are queues: a message waits behind those sent before it
        // (a peer answering a large WANT, a node fetching from several peers at once), then travels.
        let departs = max(now, uplinkFreeAt[i]) + Double(bytes) / config.uplinkBytesPerSecond
        uplinkFreeAt[i] = departs
        var arrival = departs + latency(bytes: 0, from: i)
        arrival = max(arrival, downlinkFreeAt[to] + Double(bytes) / config.downlinkBytesPerSecond)
        downlinkFreeAt[to] = arrival
        if !(faultsOn && config.reorder) { arrival = max(arrival, conn.lastArrival[side]) }
        conn.lastArrival[side] = arrival
        conn.inFlight[side] += 1
        queue.push(arrival, .deliver(conn: c, to: to, message))
        if faultsOn && config.duplication > 0 && Double.random(in: 0..<1, using: &random) < config.duplication {
            conn.inFlight[side] += 1
            queue.push(arrival + latency(bytes: 0, from: i), .deliver(conn: c, to: to, message))
        }
        conns[c] = conn
    }

    func crash(_ i: Int) {
        nodes[i].alive = false
        nodes[i].epoch += 1
        for (c, conn) in conns.sorted(by: { $0.key < $1.key }) where conn.a == i || conn.b == i {
            var conn = conn
            conn.open[conn.side(i)] = false
            conns[c] = conn
            queue.push(now + latency(bytes: 0, from: i), .closed(conn: c, node: conn.other(i)))
        }
    }

    func restart(_ i: Int, lost: Bool) {
        if lost {
            nodes[i].catalog = SimCatalog(pool: pool)
            hook(i)
        }
        let table = nodes[i].core.table.entries.values.sorted { $0.key < $1.key }
        var core = GossipCore(
            catalog: nodes[i].catalog, selfKey: nodes[i].key, bootstrap: nodes[i].bootstrap, settings: config.gossip,
            random: GossipRandom(seed: random.next()), now: local(i))
        core.load(table)
        nodes[i].core = core
        nodes[i].alive = true
        nodes[i].upSince = now
        upSince[i] = now
        startTimers(i, at: now)
    }

    // MARK: - Publishing and attacks

    func publish() {
        let honest = nodes.indices.filter { nodes[$0].alive && nodes[$0].role == .honest }
        guard !honest.isEmpty else { return }
        let publisher = UInt32(Int.random(in: 0..<config.publishers, using: &random))
        let release = nextRelease
        nextRelease += 1
        let at = honest[Int.random(in: 0..<honest.count, using: &random)]
        var items: [CatalogItem] = []
        if !publisherKeysSent.contains(publisher) {
            publisherKeysSent.insert(publisher)
            items.append(SimItem.make(.publisherKey, publisher: publisher, release: 0, size: 91))
        }
        items += releaseItems(publisher: publisher, release: release)
        track(items[items.count - 2], at: at)
        for item in items { nodes[at].catalog.commit(item) }
        if config.pollOnPublish { perform(at, nodes[at].core.fire(.poll, now: local(at))) }
        if equivocated.count < config.equivocations, honest.count > 1 {
            // The same release signed again with other contents, handed to another node at the same moment.
            var other = honest[Int.random(in: 0..<honest.count, using: &random)]
            if other == at { other = honest[(honest.firstIndex(of: at)! + 1) % honest.count] }
            equivocated.append((publisher, release))
            for item in items.filter({ $0.kind == .publisherKey })
                + releaseItems(
                    publisher: publisher, release: release, variant: 1)
            {
                nodes[other].catalog.commit(item)
            }
        }
        publishes += 1
    }

    func track(_ manifest: CatalogItem, at node: Int) {
        tracked[manifest.id] = announced.count
        announced.append((now, node))
        reached.append(0)
        itemMessages.append(0)
        itemBytes.append(0)
        announceMessages.append(0)
    }

    func attack(_ i: Int) {
        let links = nodes[i].core.sortedLinks
        switch nodes[i].role {
        case .forger:
            // Forged manifests (bad signatures) of releases nobody published, pushed to every peer.
            let forged = SimItem.make(
                .manifest, publisher: 0, release: UInt32.max - UInt32(Int.random(in: 0..<1000, using: &random)),
                valid: false, size: config.itemSizes[1])
            for link in links { send(.items(path: [], items: [forged]), on: link.id, from: i) }
        case .flooder:
            // A burst of junk: malformed reconciliation and unsolicited PEERS.
            for link in links {
                for _ in 0..<8 {
                    send(
                        .reconcile(round: 0, ranges: [.init(upper: .id(ContentHash.of([1])), mode: .skip)]),
                        on: link.id, from: i)
                }
                send(.peers([]), on: link.id, from: i)
            }
        default:
            break
        }
    }

    // MARK: - Invariants

    func fail(_ text: String) {
        failures.append("t=\(String(format: "%.3f", now)) \(text)")
    }

    /// Checked after every step of node `i`.
    func check(_ i: Int) {
        let core = nodes[i].core
        let outbound = core.links.values.filter(\.outbound).count
        let inbound = core.links.count - outbound
        maxOutbound = max(maxOutbound, outbound)
        maxPending = max(maxPending, core.pending.count)
        if inbound > config.gossip.inboundCap { fail("node \(i): \(inbound) inbound links over the cap") }
        if core.pending.count > GossipLimits.maxPending { fail("node \(i): \(core.pending.count) pending items") }
        if core.table.count > config.gossip.table.maxEntries { fail("node \(i): peer table over its limit") }
        if !nodes[i].catalog.movedBindings.isEmpty {
            fail("node \(i): a binding moved: \(nodes[i].catalog.movedBindings)")
        }
    }

    /// Every honest live node holds the same items, and each equivocated release's proof.
    func checkConvergence(final: Bool) {
        let honest = nodes.indices.filter { nodes[$0].role == .honest && nodes[$0].alive }
        guard let first = honest.first else { return }
        let reference = nodes[first].catalog.summary()
        var differing = 0
        var sample: [String] = []
        for i in honest.dropFirst() where nodes[i].catalog.summary() != reference {
            differing += 1
            if sample.count < 4 {
                sample.append(
                    "node \(i): \(nodes[i].catalog.count) items, \(nodes[i].core.links.count) links, "
                        + "\(nodes[i].core.pending.count) pending, table \(nodes[i].core.table.count), "
                        + "entry for \(first): \(String(describing: nodes[i].core.table[nodes[first].hex]))")
            }
        }
        if differing == 0 {
            if convergedAt == nil { convergedAt = now }
            for (p, r) in equivocated {
                let a = releaseItems(publisher: p, release: r)[1].id
                let b = releaseItems(publisher: p, release: r, variant: 1)[1].id
                let proof = SimItem.proof(publisher: p, release: r, a, b).id
                if (try? nodes[first].catalog.hasItem(proof)) != true {
                    fail("release \(p)/\(r) was equivocated but honest nodes hold no proof")
                }
            }
        } else if final {
            fail(
                "honest nodes did not converge: \(differing) of \(honest.count) differ from node \(first) "
                    + "(\(reference.count) items, \(nodes[first].core.links.count) links): \(sample.joined(separator: "; "))"
            )
        }
        if final {
            for i in honest {
                for j in honest where i != j {
                    if let e = nodes[i].core.table[nodes[j].hex], e.bannedUntil > local(i) {
                        fail("honest node \(i) banned honest node \(j)")
                    }
                }
                if honest.count > 200 { break }
            }
        }
    }

    // MARK: - Report

    func report() -> SimReport {
        let sorted = delays.sorted()
        func q(_ p: Double) -> Double {
            sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))]
        }
        let n = Double(config.nodes)
        let counted = Array(itemMessages.indices.dropLast(min(itemMessages.count, 5)))
        let msgs = counted.map { Double(itemMessages[$0]) }.sorted()
        let announces = counted.map { Double(announceMessages[$0]) }.sorted()
        let bytes = counted.map { Double(itemBytes[$0]) }.sorted()
        let honest = nodes.indices.filter { nodes[$0].role == .honest }
        let catalogBytes = honest.map { nodes[$0].catalog.bytes }.sorted()
        return SimReport(
            seed: config.seed, nodes: config.nodes, steps: steps, publishes: publishes,
            deliveryP50: q(0.5), deliveryP99: q(0.99), deliveryMax: sorted.last ?? .nan,
            messagesPerAnnouncement: msgs.isEmpty ? .nan : msgs[msgs.count / 2] / n,
            announceFramesPerAnnouncement: announces.isEmpty ? .nan : announces[announces.count / 2] / n,
            bytesPerAnnouncement: bytes.isEmpty ? .nan : bytes[bytes.count / 2],
            allBytesPerPublish: publishes == 0 ? .nan : Double(totalBytes) / Double(publishes),
            catalogBytesMedian: catalogBytes.isEmpty ? 0 : catalogBytes[catalogBytes.count / 2],
            convergedAfter: convergedAt.map { $0 - faultsEndedAt }, catchUp: catchUpDone,
            catchUpItemBytes: catchUpItemBytes, catchUpNeededBytes: catchUpNeededBytes, maxOutbound: maxOutbound,
            maxPending: maxPending,
            messages: messages, dropped: dropped, failures: failures)
    }
}

/// What one run measured.
public struct SimReport: Sendable {
    public let seed: UInt64
    public let nodes: Int
    public let steps: Int
    public let publishes: Int
    public let deliveryP50: Double
    public let deliveryP99: Double
    public let deliveryMax: Double
    /// Median over announcements of ITEMS messages that carried the manifest, divided by N.
    public let messagesPerAnnouncement: Double
    /// Median over announcements of lazy-push frames (RECONCILE announcements) naming the manifest, divided by N.
    public let announceFramesPerAnnouncement: Double
    /// Median over announcements of the manifest's bytes in those messages.
    public let bytesPerAnnouncement: Double
    /// Every gossip byte of the run divided by the publishes (anti-entropy, peer exchange and dials included).
    public let allBytesPerPublish: Double
    public let catalogBytesMedian: Int
    /// Seconds from the end of faults until every honest node held the same items.
    public let convergedAfter: Double?
    /// Seconds the node that was offline took to hold every item, from when it came back.
    public let catchUp: Double?
    /// Item bytes the catching-up node received until it held everything, and the bytes of the items it lacked.
    public let catchUpItemBytes: Int
    public let catchUpNeededBytes: Int
    public let maxOutbound: Int
    public let maxPending: Int
    public let messages: Int
    public let dropped: Int
    public let failures: [String]

    var catchUpBytes: String {
        guard catchUpNeededBytes > 0 else { return "" }
        let ratio = Double(catchUpItemBytes) / Double(catchUpNeededBytes)
        return
            "; item bytes received \(catchUpItemBytes) for \(catchUpNeededBytes) lacked (\(String(format: "%.2f", ratio))x)"
    }

    public var summary: String {
        func f(_ x: Double) -> String { x.isNaN ? "-" : String(format: "%.3f", x) }
        return """
            seed \(seed) nodes \(nodes) steps \(steps) publishes \(publishes)
            delivery p50 \(f(deliveryP50)) s p99 \(f(deliveryP99)) s max \(f(deliveryMax)) s
            messages/announcement \(f(messagesPerAnnouncement)) n (+ \(f(announceFramesPerAnnouncement)) n id announcements); manifest bytes/announcement \(f(bytesPerAnnouncement)); all bytes/publish \(f(allBytesPerPublish))
            catalog bytes/node (median) \(catalogBytesMedian); converged \(convergedAfter.map { f($0) + " s after faults stopped" } ?? "NEVER")
            catch-up \(catchUp.map { f($0) + " s" } ?? "-")\(catchUpBytes)
            max outbound \(maxOutbound) max pending \(maxPending) messages \(messages) dropped \(dropped)
            failures \(failures.count)\(failures.prefix(5).map { "\n  " + $0 }.joined())
            """
    }
}
