import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaPeer

/// Synthetic catalog items for the simulator: the real item kinds and sizes, with a body that says who signed what
/// instead of a signature (checking a million P-256 signatures would measure crypto, not gossip).
///
/// Body: `"SIM1"`, a signature byte (1 valid, 0 forged), publisher u32, release u32, variant u32 (big-endian), then
/// zero padding up to the item's size. A forged item is refused as a bad signature, the way the real catalog refuses
/// one; everything else follows the real catalog's outcomes (see `SimCatalog.accept`).
public enum SimItem {
    public static let magic: [UInt8] = Array("SIM1".utf8)

    public static func make(
        _ kind: CatalogItem.Kind, publisher: UInt32, release: UInt32, variant: UInt32 = 0, valid: Bool = true,
        size: Int
    ) -> CatalogItem {
        var body = magic + [valid ? 1 : 0]
        for v in [publisher, release, variant] { body += withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        if body.count < size { body += [UInt8](repeating: 0, count: size - body.count) }
        return CatalogItem(kind: kind, body: body)
    }

    public struct Parsed: Sendable {
        public let valid: Bool
        public let publisher: UInt32
        public let release: UInt32
        public let variant: UInt32
    }

    public static func parse(_ item: CatalogItem) -> Parsed? {
        let b = item.body
        guard b.count >= 17, Array(b[0..<4]) == magic else { return nil }
        func u32(_ at: Int) -> UInt32 { b[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        return Parsed(valid: b[4] == 1, publisher: u32(5), release: u32(9), variant: u32(13))
    }

    /// The proof that a publisher signed two manifests for one release: the same bytes at every node that sees both.
    public static func proof(publisher: UInt32, release: UInt32, _ a: ContentHash, _ b: ContentHash) -> CatalogItem {
        let pair = [a, b].sorted()
        var item = make(.equivocation, publisher: publisher, release: release, size: 17)
        item = CatalogItem(kind: .equivocation, body: item.body + pair[0].bytes + pair[1].bytes)
        return item
    }
}

/// Items every simulated node can look up by id (bodies are shared, never copied per node).
public final class SimItemPool {
    public private(set) var items: [ContentHash: CatalogItem] = [:]
    public init() {}
    public func add(_ item: CatalogItem, id: ContentHash) { items[id] = item }
    public subscript(id: ContentHash) -> CatalogItem? { items[id] }
}

/// An in-memory catalog with the real catalog's verdicts on synthetic items:
/// - over `CatalogItem.maxBodyBytes`, not a `SimItem`, or forged: throws (the sender is at fault);
/// - held already: `.duplicate`;
/// - a log entry, manifest or checkpoint whose publisher key is not held: `.pending`;
/// - a manifest for a release bound to another manifest: the binding is decided by the real `ForkChoice.decide`
///   (first-seen policy: the held one stands), the item is held as evidence and a proof derived: `.conflict`.
///
/// The id set is an `ItemIndex` whose blocks are shared copy-on-write with a base catalog, plus a small tail of new
/// ids merged on demand, so thousands of nodes holding the same 10⁵ items cost one copy of them.
public final class SimCatalog: GossipCatalog {
    let pool: SimItemPool
    var index: ItemIndex
    var tail: Set<ContentHash> = []
    var log: [ContentHash] = []
    var publishers: Set<UInt32> = []
    /// The manifest each release (publisher << 32 | release) is bound to.
    public private(set) var bindings: [UInt64: ContentHash] = [:]
    /// Bindings that moved (an invariant violation), as (release, from, to).
    public private(set) var movedBindings: [(UInt64, ContentHash, ContentHash)] = []
    /// Called with each newly held id (the simulator records arrival times).
    var onAdd: ((ContentHash) -> Void)?
    public private(set) var bytes = 0

    /// A catalog holding `base` (ids all in `pool`), with its publishers and bindings.
    public init(pool: SimItemPool, base: ItemIndex = ItemIndex(), publishers: Set<UInt32> = [], bytes: Int = 0) {
        self.pool = pool
        self.index = base
        self.publishers = publishers
        self.bytes = bytes
    }

    public var count: Int { index.count + tail.count }

    public func itemIndex() throws -> ItemIndex {
        if !tail.isEmpty {
            index.insert(tail.sorted())
            tail.removeAll(keepingCapacity: true)
        }
        return index
    }

    public func itemIDs() throws -> [ContentHash] { try itemIndex().all }

    /// The count and sum of the ids: equal sets give equal summaries (the convergence check, without listing ids).
    public func summary() -> (count: Int, sum: IDSum) {
        let index = (try? itemIndex()) ?? ItemIndex()
        return (index.count, index.sum)
    }

    public func hasItem(_ id: ContentHash) throws -> Bool { tail.contains(id) || index.contains(id) }

    public func items(_ ids: [ContentHash]) throws -> [CatalogItem] {
        try ids.filter { try hasItem($0) }.compactMap { pool[$0] }.sorted { $0.kind < $1.kind }
    }

    public func items(after seq: Int, limit: Int) throws -> (items: [CatalogItem], last: Int) {
        let end = min(log.count, seq + limit)
        guard seq < end else { return ([], seq) }
        return (log[seq..<end].compactMap { pool[$0] }, end)
    }

    public var lastItemSeq: Int { log.count }

    func record(_ item: CatalogItem, id: ContentHash) {
        tail.insert(id)
        log.append(id)
        bytes += item.body.count + 1 + 32
        if pool[id] == nil { pool.add(item, id: id) }
        onAdd?(id)
    }

    public func accept(_ item: CatalogItem) throws -> Catalog.ItemOutcome {
        guard item.body.count <= CatalogItem.maxBodyBytes else {
            throw GossipError(.tooLarge, "an item of \(item.body.count) bytes")
        }
        let id = item.id
        if try hasItem(id) { return .duplicate }
        guard let p = SimItem.parse(item) else { throw GossipError(.malformed, "not a simulated item") }
        guard p.valid else { throw GossipError(.badSignature, "a forged \(item.kind) item") }
        switch item.kind {
        case .publisherKey:
            publishers.insert(p.publisher)
        case .manifest:
            guard publishers.contains(p.publisher) else { return .pending("publisher \(p.publisher)") }
            let release = UInt64(p.publisher) << 32 | UInt64(p.release)
            if let held = bindings[release], held != id {
                let decision = ForkChoice.decide(
                    contenders: [.init(id: held, witnesses: []), .init(id: id, witnesses: [])], held: held,
                    policy: .firstSeen)
                if let winner = decision.winner, winner != held {
                    movedBindings.append((release, held, winner))
                    bindings[release] = winner
                }
                record(item, id: id)
                let proof = SimItem.proof(publisher: p.publisher, release: p.release, held, id)
                let proofID = proof.id
                if try hasItem(proofID) { return .conflict(derived: []) }
                record(proof, id: proofID)
                return .conflict(derived: [proof])
            }
            bindings[release] = id
        case .logEntry, .checkpoint, .availability, .demand, .cosignature, .compromise:
            guard publishers.contains(p.publisher) else { return .pending("publisher \(p.publisher)") }
        case .equivocation:
            break
        }
        record(item, id: id)
        return .added(derived: [])
    }

    /// Adds an item this node made itself (a publish), as a CLI process would write it to the catalog.
    @discardableResult
    public func commit(_ item: CatalogItem) -> Catalog.ItemOutcome? { try? accept(item) }
}
