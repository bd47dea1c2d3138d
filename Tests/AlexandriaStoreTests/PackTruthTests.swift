import AlexandriaCore
import Foundation
import Testing

@testable import AlexandriaStore

/// The packs are the truth: an index that is emptied, lost its WAL or is an older copy never leads a later command to
/// cut or hide a committed record (Protocol/store-v1.md).
@Suite("Packs are the truth")
struct PackTruthTests {
    /// Adds `count` files and returns their bytes by address.
    func addFiles(_ t: TemporaryStore, _ store: ContentStore, count: Int, seed: UInt64) throws -> [ContentHash: [UInt8]]
    {
        var out: [ContentHash: [UInt8]] = [:]
        for i in 0..<count {
            let bytes = TestData.random(1_500_000 + 70_000 * i, seed: seed + UInt64(i))
            out[try store.add(path: try t.file(bytes)).address] = bytes
        }
        return out
    }

    func expectAll(_ store: ContentStore, _ files: [ContentHash: [UInt8]]) throws {
        #expect(Set(try store.list().map(\.address)) == Set(files.keys))
        for (address, bytes) in files { #expect(try readAll(store, address) == bytes) }
        #expect(try store.verify().isClean)
    }

    func noCatchUp() -> StoreOptions {
        var o = StoreOptions()
        o.catchUpAtOpen = false
        return o
    }

    func replaceIndex(_ t: TemporaryStore, with bytes: Data?) throws {
        let index = t.directory + "/index.sqlite"
        for suffix in ["-wal", "-shm"] { unlink(index + suffix) }
        if let bytes { try bytes.write(to: URL(fileURLWithPath: index)) } else { unlink(index) }
    }

    @Test(arguments: ["emptied", "deleted"])
    func aLostIndexIsReportedThenIndexedAgainNeverCut(fault: String) throws {
        let t = try TemporaryStore()
        var files = try addFiles(t, t.store, count: 3, seed: 100)
        t.store.closeIndex()
        try replaceIndex(t, with: fault == "emptied" ? Data() : nil)
        // verify's view: damage, with the command that fixes it.
        let drift = try t.reopen(options: noCatchUp()).packDrift()
        #expect(drift.lostFiles.count == 3 && drift.indexIsBehind)
        #expect(drift.advice?.contains("alexandria verify --repair") == true)
        // The next ordinary add indexes the three files again instead of cutting their bytes.
        let store = try t.reopen(options: noCatchUp())
        files.merge(try addFiles(t, store, count: 1, seed: 200)) { a, _ in a }
        try expectAll(store, files)
        #expect(try store.packDrift().isCurrent)
    }

    @Test func aLostWALOrAnOlderIndexCopyIsCaughtUp() throws {
        let t = try TemporaryStore()
        var files = try addFiles(t, t.store, count: 1, seed: 300)
        try t.store.writerConnection.withLock { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        let older = try Data(contentsOf: URL(fileURLWithPath: t.directory + "/index.sqlite"))
        files.merge(try addFiles(t, t.store, count: 2, seed: 310)) { a, _ in a }
        // Remove one of them: the removal record must survive too.
        let removed = files.keys.sorted().first!
        #expect(try t.store.remove(removed))
        files[removed] = nil
        t.store.closeIndex()
        try replaceIndex(t, with: older)
        let drift = try t.reopen(options: noCatchUp()).packDrift()
        #expect(drift.indexIsBehind && drift.advice != nil)
        // gc and add run on the stale index without destroying anything.
        let store = try t.reopen(options: noCatchUp())
        _ = try store.collectGarbage()
        files.merge(try addFiles(t, store, count: 1, seed: 320)) { a, _ in a }
        try expectAll(store, files)
    }

    /// The commit sequence: a writer killed between its recipe record and its index commit leaves exactly one record
    /// numbered with the index's `next_sequence`: routine, not damage. An index that lost two commits is damage.
    @Test func oneUnfinishedCommitIsRoutineTwoLostCommitsAreDamage() throws {
        let t = try TemporaryStore()
        var files = try addFiles(t, t.store, count: 1, seed: 400)
        try t.store.writerConnection.withLock { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        let before = try Data(contentsOf: URL(fileURLWithPath: t.directory + "/index.sqlite"))
        // The index as it was before one more add: what a writer killed before its index commit leaves.
        files.merge(try addFiles(t, t.store, count: 1, seed: 410)) { a, _ in a }
        t.store.closeIndex()
        try replaceIndex(t, with: before)
        let one = try t.reopen(options: noCatchUp()).packDrift()
        #expect(one.lostFiles.count == 1 && one.onlyAnUnfinishedCommit, "\(one.lostSequences) \(one.indexSequence)")
        #expect(!one.indexIsBehind && one.advice == nil && one.unfinishedWrite)
        // Opening the store indexes it again by itself.
        try expectAll(try t.reopen(), files)
        // Two commits past the index: an index that lost commits.
        let store = try t.reopen()
        files.merge(try addFiles(t, store, count: 2, seed: 420)) { a, _ in a }
        store.closeIndex()
        try replaceIndex(t, with: before)
        let two = try t.reopen(options: noCatchUp()).packDrift()
        #expect(two.lostSequences.count == 3 && two.indexIsBehind)
        #expect(two.advice?.contains("verify --repair") == true)
    }

    @Test func onlyATornTailIsCut() throws {
        let t = try TemporaryStore()
        let files = try addFiles(t, t.store, count: 2, seed: 400)
        t.store.closeIndex()
        let pack = try #require(t.packPaths().last)
        let before = try #require(FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int)
        // Half a record: a header that promises more bytes than follow.
        var header = [UInt8](repeating: 0, count: PackRecordHeader.size + 100)
        header.withUnsafeMutableBytes { p in
            PackRecordHeader(
                kind: .chunk, codec: .raw, rawLength: 5000, storedLength: 5000, sequence: 0, id: .empty
            ).write(to: p.baseAddress!)
        }
        let handle = try #require(FileHandle(forWritingAtPath: pack))
        handle.seekToEndOfFile()
        handle.write(Data(header))
        try handle.close()
        let drift = try t.reopen(options: noCatchUp()).packDrift()
        #expect(drift.tornBytes == header.count && drift.unfinishedWrite && drift.advice == nil)
        let store = try t.reopen()
        #expect(try #require(FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int) == before)
        try expectAll(store, files)
    }

    @Test func damageInsideATailIsKeptNotCut() throws {
        let t = try TemporaryStore()
        var files = try addFiles(t, t.store, count: 1, seed: 500)
        try t.store.writerConnection.withLock { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        let older = try Data(contentsOf: URL(fileURLWithPath: t.directory + "/index.sqlite"))
        let pack = try #require(t.packPaths().last)
        let indexedSize = try #require(FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int)
        files.merge(try addFiles(t, t.store, count: 2, seed: 510)) { a, _ in a }
        t.store.closeIndex()
        try replaceIndex(t, with: older)
        // Flip a byte in the first record past the old index's view: a chunk of the second file is damaged.
        let fd = open(pack, O_RDWR)
        var byte: UInt8 = 0
        _ = pread(fd, &byte, 1, off_t(indexedSize + 1000))
        byte ^= 0xff
        _ = pwrite(fd, &byte, 1, off_t(indexedSize + 1000))
        close(fd)
        let sizeBefore = try #require(FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int)
        let store = try t.reopen()
        #expect(try #require(FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int) == sizeBefore)
        let report = try store.verify()
        #expect(report.incompleteFiles.count == 1)
        // Everything else is there, byte for byte.
        for (address, bytes) in files where !report.incompleteFiles.contains(address) {
            #expect(try readAll(store, address) == bytes)
        }
    }

    @Test func anIndexOlderThanAGCIsRefusedWithTheRepairCommand() throws {
        let t = try TemporaryStore()
        var files = try addFiles(t, t.store, count: 2, seed: 600)
        try t.store.writerConnection.withLock { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        let older = try Data(contentsOf: URL(fileURLWithPath: t.directory + "/index.sqlite"))
        _ = try t.store.collectGarbage()
        t.store.closeIndex()
        try replaceIndex(t, with: older)
        let store = try t.reopen()
        #expect(try store.packDrift().advice?.contains("verify --repair") == true)
        do {
            files.merge(try addFiles(t, store, count: 1, seed: 610)) { a, _ in a }
            Issue.record("an add ran on an index that points at removed packs")
        } catch let error as StoreError {
            #expect(error.code == .indexCorrupt && error.message.contains("verify --repair"))
        }
        store.closeIndex()
        _ = try ContentStore.rebuildIndex(directory: t.directory)
        try expectAll(try t.reopen(), files)
    }

    @Test func closingCheckpointsEveryCommitIntoTheIndexFile() throws {
        let t = try TemporaryStore()
        let files = try addFiles(t, t.store, count: 2, seed: 700)
        t.store.closeIndex()
        let wal = t.directory + "/index.sqlite-wal"
        let walSize = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
        #expect(walSize == 0)
        // A copy of index.sqlite alone is whole.
        try replaceIndex(t, with: try Data(contentsOf: URL(fileURLWithPath: t.directory + "/index.sqlite")))
        let store = try t.reopen(options: noCatchUp())
        #expect(try store.packDrift().isCurrent)
        try expectAll(store, files)
    }

    @Test func theStaleIndexCheckAtOpenIsCheap() throws {
        let t = try TemporaryStore()
        _ = try addFiles(t, t.store, count: 2, seed: 800)
        let start = Date()
        for _ in 0..<50 { _ = try t.store.packDrift() }
        let each = Date().timeIntervalSince(start) / 50
        #expect(each < 0.01, "the check took \(each * 1000) ms")
    }
}

/// The figure for the closing note: the stale-index check on a store of 10,000 files. Run by hand with
/// `ALEXANDRIA_MEASURE=1 swift test --filter StaleIndexCheckCost`.
@Suite("Stale-index check cost")
struct StaleIndexCheckCost {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ALEXANDRIA_MEASURE"] != nil))
    func onTenThousandFiles() throws {
        let t = try TemporaryStore()
        let source = t.directory + "/one"
        for i in 0..<10_000 {
            try Data(TestData.random(2_000 + i % 1000, seed: UInt64(i))).write(to: URL(fileURLWithPath: source))
            _ = try t.store.add(path: source)
        }
        #expect(try t.store.list().count == 10_000)
        let rounds = 200
        var start = Date()
        for _ in 0..<rounds { #expect(try t.store.packDrift().isCurrent) }
        let check = Date().timeIntervalSince(start) / Double(rounds)
        start = Date()
        for _ in 0..<20 { _ = try t.reopen() }
        let open = Date().timeIntervalSince(start) / 20
        print("stale-index check on 10,000 files: \(check * 1e6) µs per check; a whole open: \(open * 1e3) ms")
        start = Date()
        #expect(try t.store.rowProblems().isEmpty)
        print("verify's row check on 10,000 files: \(Date().timeIntervalSince(start) * 1e3) ms")
    }
}
