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
    init() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        catalog = try Catalog(path: dir + "/catalog.sqlite")
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

    /// Two homes with the same key publish different weights as tiny@1.0 (a partitioned publisher). Each keeps
    /// its own first binding until witnesses settle it; then both resolve the same way, by the earlier quorum.
    @Test func aConflictIsSettledTheSameWayOnBothSidesByWitnesses() throws {
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
        // No witnesses yet: each keeps what it saw first.
        #expect(try a.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == original.id)
        #expect(try b.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == forged.id)
        func cosign(_ signed: SignedManifest, at t: UInt64) throws -> CatalogItem {
            // The checkpoint of size 1 of that side's log, cosigned by a fresh witness.
            let side = signed.id == original.id ? a : b
            let text = try side.catalog.checkpoints(key.id).first!.checkpoint.text
            return try Cosignature.sign(checkpointText: text, key: Curve25519.Signing.PrivateKey(), timestamp: t).item
        }
        // The forgery gets one early witness (its own node, say): below quorum, it settles nothing.
        let w1 = try cosign(forged, at: 50)
        // The original gets two witnesses, at 100 and 101: quorum at 101.
        let w2 = try cosign(original, at: 100)
        let w3 = try cosign(original, at: 101)
        for w in [w1, w2, w3] {
            _ = try a.catalog.accept(w)
            _ = try b.catalog.accept(w)
        }
        #expect(try a.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == original.id)
        #expect(try b.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == original.id)
        // Had the forgery reached quorum first (a second witness at 60), it would stand everywhere instead.
        let w4 = try cosign(forged, at: 60)
        _ = try a.catalog.accept(w4)
        _ = try b.catalog.accept(w4)
        #expect(try a.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == forged.id)
        #expect(try b.catalog.settledBinding(publisher: key.id, release: "tiny@1.0") == forged.id)
    }
}
