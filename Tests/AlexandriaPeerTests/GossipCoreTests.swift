import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaWire
import Foundation
import Testing

@testable import AlexandriaPeer

/// Gossip cores on real SQLite catalogs, wired to each other in memory: no socket, no clock (the test says the time).
final class CoreNet {
    struct Pending {
        let to: Int
        let link: LinkID
        let message: WireMessage
    }
    let dir = FileManager.default.temporaryDirectory.path + "/alexandria-core-\(UUID().uuidString)"
    var catalogs: [Catalog] = []
    var cores: [GossipCore] = []
    var keys: [[UInt8]] = []
    /// Link id → (node, peer node).
    var ends: [LinkID: (Int, Int)] = [:]
    var queue: [Pending] = []
    var failed: [(Int, LinkID, WireError)] = []
    var dials: [(Int, PeerAddress)] = []
    var nextLink = 1
    var now = 1_000_000.0

    init(_ n: Int, settings: GossipSettings = GossipSettings()) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for i in 0..<n {
            let catalog = try Catalog(path: "\(dir)/\(i).sqlite")
            catalogs.append(catalog)
            let key = (0..<32).map { UInt8(($0 * 7 + i * 13 + 1) & 0xff) }
            keys.append(key)
            cores.append(
                GossipCore(
                    catalog: catalog, selfKey: key, bootstrap: [], settings: settings,
                    random: GossipRandom(seed: UInt64(i + 1)), now: now))
        }
    }
    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func address(_ i: Int) -> PeerAddress { PeerAddress(host: "10.0.0.\(i + 1)", port: 7000) }

    /// `a` dials `b`; returns whether both kept the link.
    @discardableResult
    func connect(_ a: Int, _ b: Int) -> Bool {
        let id = nextLink
        nextLink += 1
        ends[id] = (a, b)
        ends[-id] = (b, a)
        let out = cores[a].connected(id: id, key: keys[b], outbound: true, address: address(b), now: now)
        let inb = cores[b].connected(id: -id, key: keys[a], outbound: false, address: address(a), now: now)
        run(a, out.actions)
        run(b, inb.actions)
        // A refusal closes the connection for both (the refusing side sends ERROR and closes).
        if !(out.accepted && inb.accepted) { close(id) }
        return out.accepted && inb.accepted
    }

    func run(_ node: Int, _ actions: [GossipAction]) {
        for action in actions {
            switch action {
            case .send(let message, let link):
                guard let (_, peer) = ends[link] else { continue }
                queue.append(Pending(to: peer, link: -link, message: message))
            case .close(let link):
                close(link)
            case .fail(let link, let error):
                failed.append((node, link, error))
                close(link)
            case .dial(let address):
                dials.append((node, address))
            case .warn:
                break
            }
        }
    }

    func close(_ link: LinkID) {
        guard let (a, b) = ends[link] else { return }
        cores[a].disconnected(id: link, key: keys[b])
        cores[b].disconnected(id: -link, key: keys[a])
        ends[link] = nil
        ends[-link] = nil
    }

    /// Delivers queued messages in order until none is left (or `limit`).
    func drain(limit: Int = 10_000) {
        var n = 0
        while !queue.isEmpty && n < limit {
            let m = queue.removeFirst()
            n += 1
            guard let (_, from) = ends[m.link] else { continue }
            run(m.to, cores[m.to].receive(m.message, from: m.link, key: keys[from], now: now))
        }
    }

    func ids(_ i: Int) throws -> [ContentHash] { try catalogs[i].itemIDs() }
}

/// Publishes tiny@version with a real publisher key, as `alexandria publish` writes it to the catalog.
func publishReal(_ key: PublisherKey, version: String, into catalog: Catalog) throws {
    try catalog.register(publisherKey: key.publicKey)
    var log = try catalog.log(key.id)!
    let manifest = try Manifest(
        publisher: key.id, name: "tiny", version: version, logIndex: log.size,
        files: [
            Manifest.File(
                path: "model.safetensors", size: 1000, sha256: ContentHash.of(Array(version.utf8)),
                merkleRoot: ContentHash.of(Array((version + "root").utf8)), chunks: 1, chunker: .v1)
        ], lineage: [], license: "apache-2.0", modelCard: nil, created: "2026-11-23T21:00:00Z")
    let signed = try SignedManifest(manifest: manifest, key: key)
    let entry = try SignedLogEntry.sign(
        try LogEntry(
            publisher: key.id, index: log.size, kind: .publish, release: "tiny@\(version)", manifest: signed.id),
        key: key)
    try log.append(entry.envelope)
    try catalog.commit(
        entry: entry.envelope, manifest: signed.envelope, checkpoint: try log.checkpoint(signedWith: key))
}

@Suite("Gossip core: decisions without sockets, on real catalogs")
struct GossipCoreTests {
    @Test func aPublishIsPushedAlongALineAndALateNodeCatchesUpByReconciliation() throws {
        let net = try CoreNet(4)
        net.connect(0, 1)
        net.connect(1, 2)
        net.drain()
        try publishReal(PublisherKey.generate(), version: "1.0", into: net.catalogs[0])
        net.run(0, net.cores[0].fire(.poll, now: net.now))
        net.drain()
        let want = try net.ids(0)
        #expect(want.count == 4)  // key, log entry, manifest, checkpoint
        #expect(try net.ids(1) == want && net.ids(2) == want)
        // Pushed, not repaired: each node that saw it first sent it on once per neighbour.
        #expect(net.cores[0].counters.sent["items"] == 1)
        #expect(try net.ids(3).isEmpty)
        net.connect(3, 2)  // a fresh link reconciles at once
        net.drain()
        #expect(try net.ids(3) == want)
    }

    @Test func itemsLearnedByRepairAreNotPushedAgainByThePoll() throws {
        let net = try CoreNet(3)
        try publishReal(PublisherKey.generate(), version: "1.0", into: net.catalogs[0])
        net.run(0, net.cores[0].fire(.poll, now: net.now))  // nobody connected: nothing pushed
        net.connect(1, 0)
        net.connect(1, 2)
        net.drain()
        #expect(try net.ids(1) == net.ids(0))
        let sentBefore = net.cores[1].counters.sent["items"] ?? 0
        net.run(1, net.cores[1].fire(.poll, now: net.now))
        // Node 1 learned the release from a reconciliation answer: its poll must not push it as if it were its own.
        #expect(net.cores[1].counters.sent["items"] ?? 0 == sentBefore)
    }

    @Test func invalidItemsCostScoreThenTheLinkAndABan() throws {
        let net = try CoreNet(2)
        #expect(net.connect(0, 1))
        net.drain()
        let junk = (0..<4).map { CatalogItem(kind: .publisherKey, body: [UInt8(0x30), UInt8($0)]) }
        for (n, item) in junk.enumerated() {
            let link = net.cores[1].links[Hex.encode(net.keys[0])]!.id
            let actions = net.cores[1].receive(
                .items(path: [], items: [item]), from: link, key: net.keys[0], now: net.now)
            let failed = actions.contains { if case .fail = $0 { return true } else { return false } }
            #expect(failed == (n == 3), "fault \(n + 1)")
            net.run(1, actions)
        }
        #expect(net.cores[1].links.isEmpty)
        #expect(net.cores[1].table[Hex.encode(net.keys[0])]!.bannedUntil == net.now + GossipCore.banSeconds)
        #expect(!net.connect(0, 1), "a banned key is refused")
        net.now += GossipCore.banSeconds + 1
        #expect(net.connect(0, 1), "the ban expires")
    }

    @Test func unsolicitedPeersFailsTheLink() throws {
        let net = try CoreNet(
            2,
            settings: {
                var s = GossipSettings(); s.outboundTarget = 0; return s
            }())
        net.connect(0, 1)
        net.queue.removeAll()  // no PEERS_QUERY is answered
        let link = net.cores[1].links[Hex.encode(net.keys[0])]!.id
        let actions = net.cores[1].receive(.peers([]), from: link, key: net.keys[0], now: net.now)
        guard case .fail(let id, let error) = actions.first else {
            Issue.record("expected a failure, got \(actions)")
            return
        }
        #expect(id == link && error.code == .protocolViolation)
    }

    @Test func crossedDialsSettleOnTheLinkTheSmallerKeyInitiated() throws {
        let net = try CoreNet(2)
        #expect(net.keys[0].lexicographicallyPrecedes(net.keys[1]))
        #expect(net.connect(1, 0))  // the larger key dials first
        let first = net.cores[0].links[Hex.encode(net.keys[1])]!.id
        #expect(net.connect(0, 1))  // the smaller key's dial replaces it on both sides
        #expect(net.cores[0].links[Hex.encode(net.keys[1])]!.id != first)
        #expect(net.cores[0].links.count == 1 && net.cores[1].links.count == 1)
        #expect(!net.connect(1, 0), "and the larger key's next dial loses")
    }

    @Test func maintainDialsBootstrapRotatesWhenFullAndRedialsWithoutAnOutboundLink() throws {
        var settings = GossipSettings()
        settings.outboundTarget = 1
        let boot = PeerAddress(host: "10.0.0.2", port: 7000)
        let catalog = try CoreNet(1).catalogs[0]
        var core = GossipCore(
            catalog: catalog, selfKey: [UInt8](repeating: 1, count: 32), bootstrap: [boot], settings: settings,
            random: GossipRandom(seed: 1), now: 0)
        let dials = core.fire(.maintain, now: 1).compactMap { if case .dial(let a) = $0 { a } else { nil } }
        #expect(dials == [boot])
        _ = core.connected(id: 1, key: [UInt8](repeating: 2, count: 32), outbound: true, address: boot, now: 2)
        #expect(core.fire(.maintain, now: 3).allSatisfy { if case .dial = $0 { false } else { true } })
        let rotated = core.fire(.maintain, now: 2 + settings.rotateSeconds)
        #expect(rotated.contains { if case .close(1) = $0 { true } else { false } })
        core.disconnected(id: 1, key: [UInt8](repeating: 2, count: 32))
        // A peer dials in before this node dials out again: the bootstrap is still dialled, or a group of nodes that
        // bootstrapped to one another would stay an island (found by the simulator).
        _ = core.connected(
            id: 2, key: [UInt8](repeating: 3, count: 32), outbound: false,
            address: PeerAddress(host: "10.0.0.3", port: 7000), now: 2 + settings.rotateSeconds)
        let again = core.fire(.maintain, now: 3 + settings.rotateSeconds)
        #expect(again.contains { if case .dial(let a) = $0 { a == boot } else { false } })
    }

    /// A node that reconciles with several peers at once (back from offline) asks each missing id of one peer; the
    /// others that reported it are asked only when the first does not deliver within `wantSeconds` or its link goes.
    @Test func aMissingIDIsAskedOfOnePeerThenOfAnotherOnTimeoutOrWhenItsLinkGoes() throws {
        var settings = GossipSettings()
        settings.outboundTarget = 0
        let net = try CoreNet(1, settings: settings)
        var core = net.cores[0]
        let t = net.now
        let a = [UInt8](repeating: 2, count: 32)
        let b = [UInt8](repeating: 3, count: 32)
        _ = core.connected(id: 1, key: a, outbound: false, address: PeerAddress(host: "10.0.0.2", port: 7000), now: t)
        _ = core.connected(id: 2, key: b, outbound: false, address: PeerAddress(host: "10.0.0.3", port: 7000), now: t)
        let ids = (0..<10).map { ContentHash.of([UInt8($0)]) }.sorted()
        let list: [Reconciler.Range] = [.init(upper: .infinity, mode: .ids(ids))]
        func wants(_ actions: [GossipAction]) -> [LinkID: [ContentHash]] {
            var out: [LinkID: [ContentHash]] = [:]
            for case .send(.want(let w), let id) in actions { out[id, default: []] += w }
            return out
        }
        #expect(wants(core.receive(.reconcile(round: 0, ranges: list), from: 1, key: a, now: t + 1)) == [1: ids])
        #expect(wants(core.receive(.reconcile(round: 0, ranges: list), from: 2, key: b, now: t + 1.5)).isEmpty)
        #expect(wants(core.receive(.reconcile(round: 0, ranges: list), from: 1, key: a, now: t + 2)).isEmpty)
        #expect(wants(core.fire(.maintain, now: t + 3)).isEmpty)
        // Past the window: asked of B, which reported them too.
        #expect(wants(core.fire(.maintain, now: t + 1 + GossipCore.wantSeconds)) == [2: ids])
        // B's link goes and nobody else is known to hold them: forgotten, so the next reconciliation asks again.
        core.disconnected(id: 2, key: b)
        #expect(wants(core.fire(.maintain, now: t + 7)).isEmpty)
        #expect(wants(core.receive(.reconcile(round: 0, ranges: list), from: 1, key: a, now: t + 8)) == [1: ids])
        // A's link goes before it answers: asked at once of the other holder, not after the window.
        _ = core.connected(
            id: 3, key: b, outbound: false, address: PeerAddress(host: "10.0.0.3", port: 7000), now: t + 8)
        #expect(wants(core.receive(.reconcile(round: 0, ranges: list), from: 3, key: b, now: t + 8.5)).isEmpty)
        core.disconnected(id: 1, key: a)
        #expect(wants(core.fire(.maintain, now: t + 9)) == [3: ids])
    }

    /// With `lazyPushLinks`, a node pushing new items also names their ids to that many other links (one RECONCILE
    /// frame each, no item bytes); a peer the push missed asks for them, one that holds them answers nothing.
    @Test func aLazyPushNamesNewIDsToLinksThePushSkipped() throws {
        var settings = GossipSettings()
        settings.fanout = 1
        settings.lazyPushLinks = 1
        let net = try CoreNet(4, settings: settings)
        net.connect(0, 1)
        net.connect(0, 2)
        net.connect(0, 3)
        net.drain()
        try publishReal(PublisherKey.generate(), version: "1.0", into: net.catalogs[0])
        let actions = net.cores[0].fire(.poll, now: net.now)
        var items = Set<LinkID>()
        var announced = Set<LinkID>()
        for case .send(let m, let link) in actions {
            if case .items = m { items.insert(link) }
            if case .reconcile = m { announced.insert(link) }
        }
        #expect(items.count == 1 && announced.count == 1 && items.isDisjoint(with: announced))
        net.run(0, actions)
        net.drain()
        // The announced peer pulled the release; the third learns it by anti-entropy later.
        let holders = (1...3).filter { (try? net.ids($0).count) == 4 }
        #expect(holders.count >= 2)
    }

    @Test func theSameSeedMakesTheSameChoices() throws {
        func choices(seed: UInt64) throws -> [LinkID] {
            let net = try CoreNet(1)
            var core = GossipCore(
                catalog: net.catalogs[0], selfKey: [UInt8](repeating: 9, count: 32), bootstrap: [],
                settings: GossipSettings(), random: GossipRandom(seed: seed), now: 0)
            for k in 1...20 {
                _ = core.connected(
                    id: k, key: [UInt8](repeating: UInt8(k), count: 32), outbound: false,
                    address: PeerAddress(host: "10.0.1.\(k)", port: 7000), now: 0)
            }
            return (0..<30).flatMap { t in
                core.fire(.antiEntropy, now: Double(t)).compactMap { if case .send(_, let id) = $0 { id } else { nil } }
            }
        }
        #expect(try choices(seed: 5) == choices(seed: 5))
        #expect(try choices(seed: 5) != choices(seed: 6))
    }
}
