import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import Crypto
import Foundation
import Testing

/// A catalog in a temporary folder.
final class TempCatalog {
    let dir = FileManager.default.temporaryDirectory.path + "/alexandria-gossip-\(UUID().uuidString)"
    let catalog: Catalog
    /// This catalog's node (witness) key.
    let node = Curve25519.Signing.PrivateKey()
    init() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        catalog = try Catalog(path: dir + "/catalog.sqlite", witnessKey: Array(node.publicKey.rawRepresentation))
    }

    /// The same catalog opened with a trust policy.
    func with(_ trust: TrustPolicy) throws -> Catalog {
        try Catalog(path: dir + "/catalog.sqlite", trust: trust, witnessKey: Array(node.publicKey.rawRepresentation))
    }
    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// Publishes `paths` as tiny@version at the log's next index, as `publish` does.
    @discardableResult
    func publish(
        _ key: PublisherKey, version: String = "1.0", paths: [String] = ["model.safetensors"]
    ) throws
        -> SignedManifest
    {
        try catalog.register(publisherKey: key.publicKey)
        var log = try catalog.log(key.id)!
        let signed = try SignedManifest(
            manifest: try sampleManifest(key: key, version: version, paths: paths, logIndex: log.size), key: key)
        let entry = try SignedLogEntry.sign(
            try LogEntry(
                publisher: key.id, index: log.size, kind: .publish, release: "tiny@\(version)", manifest: signed.id),
            key: key)
        try log.append(entry.envelope)
        try catalog.commit(
            entry: entry.envelope, manifest: signed.envelope, checkpoint: try log.checkpoint(signedWith: key))
        return signed
    }

    func allItems() throws -> [CatalogItem] { try catalog.items(try catalog.itemIDs()) }
}

/// Offers items in the given order, retrying pending ones as a node does; returns the outcomes of the first pass.
func deliver(_ items: [CatalogItem], to catalog: Catalog) throws -> [Catalog.ItemOutcome] {
    var outcomes: [Catalog.ItemOutcome] = []
    var pending: [CatalogItem] = []
    for item in items {
        let o = try catalog.accept(item)
        outcomes.append(o)
        if case .pending = o { pending.append(item) }
    }
    var progress = true
    while progress && !pending.isEmpty {
        progress = false
        for item in pending {
            if case .pending = try catalog.accept(item) { continue }
            pending.removeAll { $0 == item }
            progress = true
        }
    }
    return outcomes
}

@Suite("Catalog items: verification, ordering, conflicts, settling")
struct CatalogGossipTests {
    let key = PublisherKey.generate()

    @Test func itemsInAnyOrderConvergeAndPendingIsNotAFault() throws {
        let a = try TempCatalog()
        try a.publish(key, version: "1.0")
        try a.publish(key, version: "2.0")
        let items = try a.allItems()
        #expect(items.count == 1 + 2 * 3)
        let b = try TempCatalog()
        let outcomes = try deliver(items.reversed(), to: b.catalog)
        #expect(outcomes.contains { if case .pending = $0 { return true } else { return false } })
        #expect(try b.catalog.itemIDs() == a.catalog.itemIDs())
        #expect(try b.catalog.binding(publisher: key.id, release: "tiny@2.0") != nil)
        // Offering everything again changes nothing.
        for item in items { #expect(try b.catalog.accept(item) == .duplicate) }
    }

    @Test func badItemsAreRefused() throws {
        let a = try TempCatalog()
        try a.publish(key)
        let b = try TempCatalog()
        let items = try a.allItems()
        _ = try deliver(items.filter { $0.kind == .publisherKey }, to: b.catalog)
        // A manifest whose payload was altered after signing.
        let manifest = items.first { $0.kind == .manifest }!
        var json = String(decoding: manifest.body, as: UTF8.self)
        let payload = try DSSEEnvelope(json: manifest.body).payload
        let altered = Data(String(decoding: payload, as: UTF8.self).replacingOccurrences(of: "tiny", with: "tinz").utf8)
        json = json.replacingOccurrences(of: Data(payload).base64EncodedString(), with: altered.base64EncodedString())
        #expect(throws: (any Error).self) { try b.catalog.accept(CatalogItem(kind: .manifest, body: Array(json.utf8))) }
        // A log entry signed by a stranger, a key that is not canonical DER, garbage.
        let stranger = PublisherKey.generate()
        let forged = try SignedLogEntry.sign(
            try LogEntry(publisher: key.id, index: 0, kind: .publish, release: "tiny@1.0", manifest: .empty),
            key: stranger)
        #expect(throws: (any Error).self) {
            try b.catalog.accept(CatalogItem(kind: .logEntry, body: forged.envelope.json))
        }
        #expect(throws: (any Error).self) {
            try b.catalog.accept(CatalogItem(kind: .publisherKey, body: [0x30, 0x00]))
        }
        #expect(throws: (any Error).self) { try b.catalog.accept(CatalogItem(kind: .checkpoint, body: [0xff, 0xfe])) }
        #expect(try b.catalog.itemIDs().count == 1)
    }

    @Test func newerStatementsReplaceOlderAndOlderAreStale() throws {
        let c = try TempCatalog()
        let node = Curve25519.Signing.PrivateKey()
        let m = ContentHash.of([1])
        let old = try AvailabilityStatement(
            nodeKey: Array(node.publicKey.rawRepresentation), manifest: m, timestampMillis: 1000, holds: true
        ).signed(with: node)
        let new = try AvailabilityStatement(
            nodeKey: Array(node.publicKey.rawRepresentation), manifest: m, timestampMillis: 2000, holds: false
        ).signed(with: node)
        #expect(try c.catalog.accept(old) == .added(derived: []))
        #expect(try c.catalog.holders(of: m).count == 1)
        #expect(try c.catalog.accept(new) == .added(derived: []))
        #expect(try c.catalog.holders(of: m).isEmpty)
        #expect(try c.catalog.accept(old) == .stale)
        #expect(try c.catalog.itemIDs() == [new.id])
        // From the future: refused.
        let future = try AvailabilityStatement(
            nodeKey: Array(node.publicKey.rawRepresentation), manifest: m,
            timestampMillis: UInt64(Date().timeIntervalSince1970 * 1000) + 3_600_000, holds: true
        ).signed(with: node)
        #expect(throws: GossipError.self) { try c.catalog.accept(future) }
    }

    /// The in-memory index reconciliation reads follows the items table: this connection's inserts and deletes (a
    /// replaced statement) and another connection's commit (a CLI process on the same home).
    @Test func itemIndexFollowsTheItemsTable() throws {
        let c = try TempCatalog()
        #expect(try c.catalog.itemIndex().isEmpty)
        try c.publish(key, version: "1.0")
        #expect(try c.catalog.itemIndex().all == c.catalog.itemIDs())
        let node = Curve25519.Signing.PrivateKey()
        let m = ContentHash.of([1])
        let old = try AvailabilityStatement(
            nodeKey: Array(node.publicKey.rawRepresentation), manifest: m, timestampMillis: 1000, holds: true
        ).signed(with: node)
        let new = try AvailabilityStatement(
            nodeKey: Array(node.publicKey.rawRepresentation), manifest: m, timestampMillis: 2000, holds: false
        ).signed(with: node)
        _ = try c.catalog.accept(old)
        #expect(try c.catalog.itemIndex().contains(old.id))
        _ = try c.catalog.accept(new)  // deletes the old statement's row
        let index = try c.catalog.itemIndex()
        #expect(!index.contains(old.id) && index.contains(new.id))
        #expect(index.all == (try c.catalog.itemIDs()))
        // Another connection (as a CLI process would) publishes: the daemon's index sees it.
        let other = try Catalog(path: c.dir + "/catalog.sqlite")
        _ = try other.accept(
            CatalogItem(kind: .publisherKey, body: Array(PublisherKey.generate().publicKey.derRepresentation)))
        #expect(try c.catalog.itemIndex().all == other.itemIDs())
        #expect(try c.catalog.itemIndex().count == c.catalog.itemIDs().count)
    }

    /// Two homes with the same key publish different weights as tiny@1.0 (a partitioned publisher). Each keeps the
    /// binding it holds whatever untrusted or backdated cosignatures say; a trust policy's quorum settles both.
    @Test func aConflictIsSettledByHeldBindingsOrATrustedQuorumNeverByTime() throws {
        let a = try TempCatalog()
        let b = try TempCatalog()
        let original = try a.publish(key, paths: ["model.safetensors"])
        let forged = try b.publish(key, paths: ["model.safetensors", "evil.bin"])
        let fromA = try a.allItems()
        let fromB = try b.allItems()
        let outcomesAtA = try deliver(fromB, to: a.catalog)
        #expect(outcomesAtA.contains { if case .conflict(let d) = $0 { return !d.isEmpty } else { return false } })
        _ = try deliver(fromA, to: b.catalog)
        // Both now hold both sides (as evidence), so their item sets converge once proofs are exchanged.
        _ = try deliver(try a.allItems(), to: b.catalog)
        _ = try deliver(try b.allItems(), to: a.catalog)
        #expect(try a.catalog.itemIDs() == b.catalog.itemIDs())
        // Learned together (within `Catalog.holdSeconds`) and witnessed by neither node: nothing settles it.
        #expect(try a.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == nil)
        #expect(try b.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == nil)
        func cosign(
            _ signed: SignedManifest, by witness: Curve25519.Signing.PrivateKey, at t: UInt64
        ) throws
            -> CatalogItem
        {
            // The checkpoint of size 1 of that side's log.
            let side = signed.id == original.id ? a : b
            let text = try side.catalog.checkpoints(key.id).first!.checkpoint.text
            return try Cosignature.sign(checkpointText: text, key: witness, timestamp: t).item
        }
        // Each node witnessed its own side before it learned the other (as a mirror does): each holds its binding.
        // Two fresh keys cosign the forgery claiming an earlier time: no timestamp and no untrusted key counts.
        let mirrors = [Curve25519.Signing.PrivateKey(), Curve25519.Signing.PrivateKey()]
        var items = [try cosign(original, by: a.node, at: 100), try cosign(forged, by: b.node, at: 100)]
        items += [try cosign(forged, by: .init(), at: 1), try cosign(forged, by: .init(), at: 2)]
        items += try mirrors.map { try cosign(original, by: $0, at: 200) }
        for w in items {
            _ = try a.catalog.accept(w)
            _ = try b.catalog.accept(w)
        }
        #expect(try a.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == original.id)
        #expect(try b.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == forged.id)
        // A policy that trusts the two mirrors settles both nodes on the original, the one that saw the forgery first
        // included.
        let policy = try TrustPolicy(
            witnesses: mirrors.map { Ed25519Strict.describe(Array($0.publicKey.rawRepresentation)) }, quorum: 2)
        #expect(try a.with(policy).settledBinding(publisher: key.id, release: "tiny@1.0") == original.id)
        #expect(try b.with(policy).settledBinding(publisher: key.id, release: "tiny@1.0") == original.id)
        // A policy whose quorum nobody reached leaves each node with what it holds.
        let strict = try TrustPolicy(
            witnesses: mirrors.map { Ed25519Strict.describe(Array($0.publicKey.rawRepresentation)) }
                + [Ed25519Strict.describe(Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation))],
            quorum: 3)
        #expect(try b.with(strict).settledBinding(publisher: key.id, release: "tiny@1.0") == forged.id)
    }
}

/// (b) A witness asked to cosign both sides of a fork refuses the second (C2SP tlog-witness).
@Suite struct WitnessConsistencyTests {
    static let leaves = (0..<5).map { ContentHash.of([UInt8($0)]) }
    static let forked = Array(leaves.prefix(2)) + [ContentHash.of([99])] + Array(leaves.suffix(2))
    static func cp(_ size: Int, _ log: [ContentHash] = leaves) -> (size: Int, root: ContentHash) {
        (size, MerkleTree.root(log.prefix(size)))
    }

    @Test func theRuleIsConsistencyWithWhatWasCosigned() {
        let refusal = Catalog.witnessRefusal
        #expect(refusal(nil, Self.cp(3), Self.leaves) == nil)
        #expect(refusal(Self.cp(3), Self.cp(3), Self.leaves) == nil)
        #expect(refusal(Self.cp(3), Self.cp(5), Self.leaves) == nil, "a larger consistent checkpoint")
        #expect(refusal(Self.cp(3), Self.cp(2), Self.leaves) != nil, "an older checkpoint")
        // The other side of a fork: another root at a size already cosigned, or a larger checkpoint not
        // consistent with the one cosigned, or a log this node does not hold.
        #expect(refusal(Self.cp(3, Self.forked), Self.cp(3), Self.leaves) != nil)
        #expect(refusal(Self.cp(3, Self.forked), Self.cp(5), Self.leaves) != nil)
        #expect(refusal(nil, Self.cp(3, Self.forked), Self.leaves) != nil)
        #expect(refusal(nil, Self.cp(6), Self.leaves) != nil, "beyond the log held")
    }

    @Test func aWitnessNeverCosignsBothSidesAndRemembersAcrossRestarts() throws {
        let key = PublisherKey.generate()
        let a = try TempCatalog()
        let b = try TempCatalog()
        try a.publish(key, paths: ["model.safetensors"])
        try b.publish(key, paths: ["model.safetensors", "evil.bin"])
        let mine = try a.catalog.checkpoints(key.id).last!.checkpoint
        let other = try b.catalog.checkpoints(key.id).last!.checkpoint
        _ = try a.catalog.cosign(mine, publisher: key.id, key: a.node)
        // Asked to cosign the other side (same size, other root): refused.
        #expect(throws: CatalogError.self) { try a.catalog.cosign(other, publisher: key.id, key: a.node) }
        // The log grows: the larger checkpoint is consistent and cosigned; the older one is not cosigned again.
        try a.publish(key, version: "2.0")
        let grown = try a.catalog.checkpoints(key.id).last!.checkpoint
        _ = try a.catalog.cosign(grown, publisher: key.id, key: a.node)
        #expect(throws: CatalogError.self) { try a.catalog.cosign(mine, publisher: key.id, key: a.node) }
        // The state is in the catalog: a restarted node refuses the same.
        #expect(throws: CatalogError.self) { try a.with(.firstSeen).cosign(mine, publisher: key.id, key: a.node) }
    }
}
