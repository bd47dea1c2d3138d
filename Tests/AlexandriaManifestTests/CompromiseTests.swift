import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import Foundation
import Testing

@Suite("Compromise notices: a leaked key freezes the log")
struct CompromiseTests {
    let key = PublisherKey.generate()

    /// A notice freezing `catalog`'s log of `key` at `size`, signed by `signer` (default: the publisher's key).
    func notice(
        _ catalog: Catalog, size: Int, signer: PublisherKey? = nil, root: ContentHash? = nil
    ) throws -> CatalogItem {
        let log = try catalog.log(key.id)!
        let notice = try CompromiseNotice(
            publisher: key.id, size: size, root: root ?? MerkleTree.root(log.leaves.prefix(size)))
        let envelope = try DSSEEnvelope.sign(
            payloadType: CompromiseNotice.payloadType, payload: notice.payload, key: signer ?? key)
        return CatalogItem(kind: .compromise, body: envelope.json)
    }

    func isFrozen(_ error: any Error) -> Bool { (error as? ManifestError)?.code == .frozen }

    @Test func noticePayloadRoundTripsAndRejectsOtherShapes() throws {
        let n = try CompromiseNotice(publisher: key.id, size: 3, root: .empty, reason: "laptop stolen")
        #expect(try CompromiseNotice(payload: n.payload) == n)
        let extra = Array(
            String(decoding: n.payload, as: UTF8.self).replacingOccurrences(of: "{", with: "{\"x\":1,").utf8)
        #expect(throws: ManifestError.self) { try CompromiseNotice(payload: extra) }
        #expect(throws: ManifestError.self) { try CompromiseNotice(publisher: key.id, size: -1, root: .empty) }
    }

    @Test func entriesManifestsAndCheckpointsPastTheFreezeAreRefusedReleasesBeforeItStand() throws {
        let a = try TempCatalog()
        try a.publish(key, version: "1.0")
        let before = try a.allItems()
        let freeze = try notice(a.catalog, size: 1)
        // The thief publishes 2.0 with the leaked key on a node that has not heard of the notice.
        try a.publish(key, version: "2.0")
        let thief = try a.allItems().filter { !before.contains($0) }
        #expect(thief.contains { $0.kind == .logEntry } && thief.contains { $0.kind == .manifest })

        let b = try TempCatalog()
        _ = try deliver(before + [freeze], to: b.catalog)
        #expect(try b.catalog.frozenSize(key.id) == 1)
        #expect(try b.catalog.hasItem(freeze.id))
        #expect(thief.count == 3)
        for item in thief {
            #expect(performing: { try b.catalog.accept(item) }, throws: isFrozen)
        }
        #expect(try b.catalog.binding(publisher: key.id, release: "tiny@2.0") == nil)
        #expect(try b.catalog.binding(publisher: key.id, release: "tiny@1.0") != nil)
        #expect(try b.catalog.log(key.id)!.size == 1)
        // The key holder cannot publish past the freeze on a node that holds the notice either.
        #expect(performing: { try b.publish(key, version: "3.0") }, throws: isFrozen)
    }

    @Test func theEarliestFreezeWinsSoAThiefCannotLiftIt() throws {
        let a = try TempCatalog()
        for v in ["1.0", "2.0", "3.0"] { try a.publish(key, version: v) }
        #expect(try a.catalog.accept(notice(a.catalog, size: 3)) == .added(derived: []))
        #expect(try a.catalog.frozenSize(key.id) == 3)
        #expect(try a.catalog.accept(notice(a.catalog, size: 1)) == .added(derived: []))
        #expect(try a.catalog.frozenSize(key.id) == 1)
        // A later notice with a larger size (the thief trying to un-freeze) changes nothing and is not kept; nor is a
        // second one of the same size that loses the tie (so no one can make a node hold more than one).
        #expect(try a.catalog.accept(notice(a.catalog, size: 2)) == .stale)
        #expect(try a.catalog.frozenSize(key.id) == 1)
        #expect(try a.catalog.compromiseNotices(key.id).map(\.notice.size) == [1])
        let twins = try (0..<2).map { _ in try notice(a.catalog, size: 1) }
        for twin in twins { _ = try a.catalog.accept(twin) }
        #expect(try a.catalog.compromiseNotices(key.id).count == 1)
        #expect(try a.allItems().filter { $0.kind == .compromise }.count == 1)
    }

    @Test func heldEntriesPastTheFreezeAreKeptButNoLongerOffered() throws {
        let a = try TempCatalog()
        try a.publish(key, version: "1.0")
        let before = Set(try a.catalog.itemIDs())
        try a.publish(key, version: "2.0")
        // The entry, the manifest and the checkpoint of size 2.
        let thiefIDs = try a.allItems().filter { !before.contains($0.id) }.map(\.id)
        #expect(thiefIDs.count == 3)
        #expect(try a.catalog.accept(notice(a.catalog, size: 1)) == .added(derived: []))
        let held = Set(try a.catalog.itemIDs())
        for id in thiefIDs { #expect(!held.contains(id)) }
        // The log is not rewritten: audit sees entry 1 and flags it as after the freeze.
        #expect(try a.catalog.log(key.id)!.size == 2)
        #expect(try a.catalog.binding(publisher: key.id, release: "tiny@2.0") != nil)
        #expect(try a.catalog.compromiseForks(key.id).isEmpty)
    }

    @Test func aNoticeWhoseRootDisagreesIsReportedAsAFork() throws {
        let a = try TempCatalog()
        try a.publish(key, version: "1.0")
        #expect(try a.catalog.accept(notice(a.catalog, size: 1, root: .empty)) == .added(derived: []))
        #expect(try a.catalog.frozenSize(key.id) == 1)
        #expect(try a.catalog.compromiseForks(key.id).count == 1)
    }

    @Test func noticesNotSignedByTheLogsKeysAreRefusedAndEarlyOnesWait() throws {
        let a = try TempCatalog()
        try a.publish(key, version: "1.0")
        #expect(throws: ManifestError.self) {
            try a.catalog.accept(notice(a.catalog, size: 1, signer: PublisherKey.generate()))
        }
        #expect(try a.catalog.frozenSize(key.id) == nil)
        // A notice at a size this node's log has not reached waits, as a checkpoint does.
        let b = try TempCatalog()
        try a.publish(key, version: "2.0")
        let early = try notice(a.catalog, size: 2)
        _ = try deliver(try a.allItems().filter { $0.kind == .publisherKey }, to: b.catalog)
        guard case .pending = try b.catalog.accept(early) else {
            Issue.record("a notice beyond the log should wait")
            return
        }
    }

    /// A catalog of version 3 gains the notices' index when opened, and the freeze query uses it.
    @Test func aVersion3CatalogMigratesAndTheNoticeQueryUsesTheIndex() throws {
        let a = try TempCatalog()
        try a.publish(key, version: "1.0")
        let path = a.dir + "/catalog.sqlite"
        do {
            let db = try SQLiteConnection(path: path, readOnly: false, busyTimeoutMilliseconds: 1000)
            try db.execute("DROP INDEX items_compromise")
            try db.execute("PRAGMA user_version = 3")
        }
        let reopened = try Catalog(path: path)
        #expect(try reopened.accept(notice(reopened, size: 1)) == .added(derived: []))
        #expect(try reopened.frozenSize(key.id) == 1)
        let db = try SQLiteConnection(path: path, readOnly: true, busyTimeoutMilliseconds: 1000)
        let version = try db.statement("PRAGMA user_version")
        _ = try version.step()
        #expect(version.int(0) == 4)
        version.reset()
        let plan = try db.statement("EXPLAIN QUERY PLAN SELECT body FROM items WHERE kind = 9 ORDER BY seq")
        var detail = ""
        while try plan.step() { detail += plan.text(3) + "\n" }
        #expect(detail.contains("items_compromise"), "\(detail)")
    }
}
