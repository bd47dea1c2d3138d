import AlexandriaCore
import Foundation
import Testing

@testable import AlexandriaStore

@Suite("Content store")
struct StoreTests {
    /// Small segments force chunks to span segment boundaries in the ingest pipeline.
    @Test(arguments: [64 << 10, 1 << 20, 8 << 20])
    func addThenReadBackVerified(segmentBytes: Int) throws {
        var options = StoreOptions()
        options.segmentBytes = segmentBytes
        let t = try TemporaryStore(options: options)
        let data = TestData.random(5_000_003, seed: 1) + [UInt8](repeating: 7, count: 3_000_000)
        let result = try t.store.add(path: try t.file(data))
        #expect(result.address == ContentHash.of(data))
        #expect(result.size == UInt64(data.count))
        #expect(!result.alreadyPresent)
        let recipe = try #require(try t.store.recipe(of: result.address))
        try recipe.validateLayout()
        #expect(recipe.merkleRoot == result.merkleRoot)
        // The recipe is exactly what the chunker cuts on the whole buffer.
        #expect(recipe.chunks.map { Int($0.length) } == Chunker().chunkLengths(data))
        #expect(try readAll(t.store, result.address) == data)
        let again = try t.store.add(path: try t.file(data))
        #expect(again.alreadyPresent && again.newBytes == 0)
    }

    @Test func emptyAndTinyFiles() throws {
        let t = try TemporaryStore()
        let empty = try t.store.add(path: try t.file([]))
        #expect(empty.address == .empty && empty.chunkCount == 0)
        #expect(try readAll(t.store, .empty).isEmpty)
        let one = try t.store.add(path: try t.file([42]))
        #expect(try readAll(t.store, one.address) == [42])
    }

    @Test func rangesReturnExactSlices() throws {
        let t = try TemporaryStore()
        let data = TestData.random(3_333_333, seed: 2)
        let address = try t.store.add(path: try t.file(data)).address
        for (a, b) in [
            (0, 1), (0, 3_333_333), (1_000_000, 1_000_001), (262_143, 900_000), (3_333_332, 3_333_333), (5, 5),
        ] {
            #expect(try readAll(t.store, address, range: UInt64(a)..<UInt64(b)) == Array(data[a..<b]), "\(a)..<\(b)")
        }
        #expect(throws: StoreError(.rangeNotSatisfiable, "")) {
            try readAll(t.store, address, range: 0..<3_333_334)
        }
        #expect(throws: StoreError(.unknownAddress, "")) { try readAll(t.store, ContentHash.of([1, 2, 3])) }
    }

    @Test func sharedChunksAreStoredOnce() throws {
        let t = try TemporaryStore()
        let base = TestData.random(8 << 20, seed: 3)
        let first = try t.store.add(path: try t.file(base))
        #expect(first.newBytes == UInt64(base.count))
        // A longer header shifts every offset; content-defined chunking still finds the shared chunks.
        let header = Array("{\"header\": \"longer\"}".utf8)
        let second = try t.store.add(path: try t.file(header + base))
        #expect(Double(second.newBytes) < 0.1 * Double(base.count))
        #expect(try readAll(t.store, second.address) == header + base)
    }

    @Test func corruptByteIsCaughtNamedAndRepairedByReAdding() throws {
        let t = try TemporaryStore()
        let data = TestData.random(2_000_000, seed: 4)
        let path = try t.file(data)
        let address = try t.store.add(path: path).address
        let pack = try #require(t.packPaths().first)
        try flipByte(in: pack, at: 700_000)
        do {
            _ = try readAll(t.store, address)
            Issue.record("a damaged chunk was served")
        } catch let error as StoreError {
            #expect(error.code == .corruptChunk || error.code == .missingChunk)
        }
        let report = try t.store.verify()
        #expect(!report.isClean)
        #expect(report.incompleteFiles == [address])
        // Treated as missing from then on, and a re-add of the same bytes repairs it.
        let repaired = try t.store.add(path: path)
        #expect(repaired.newChunks == 1)
        #expect(try readAll(t.store, address) == data)
        #expect(try t.store.verify().isClean)
    }

    @Test func corruptionMessageNamesPackAndOffset() throws {
        let t = try TemporaryStore()
        let data = TestData.random(600_000, seed: 5)
        let address = try t.store.add(path: try t.file(data)).address
        let recipe = try #require(try t.store.recipe(of: address))
        let pack = try #require(t.packPaths().first)
        try flipByte(in: pack, at: PackRecordHeader.size + 10)
        do {
            _ = try t.store.chunk(recipe.chunks[0].id)
            Issue.record("a damaged chunk was returned")
        } catch {
            #expect(error.code == .corruptChunk)
            #expect(error.message.contains(pack) && error.message.contains("at offset 0"))
        }
    }

    @Test func truncatedPackIsReportedNotServed() throws {
        let t = try TemporaryStore()
        let data = TestData.random(3_000_000, seed: 6)
        let address = try t.store.add(path: try t.file(data)).address
        let pack = try #require(t.packPaths().first)
        #expect(truncate(pack, 1_000_000) == 0)
        #expect(throws: StoreError.self) { try readAll(t.store, address) }
        let report = try t.store.verify()
        #expect(!report.problems.isEmpty && report.incompleteFiles == [address])
        // A new add neither trusts nor extends the short pack: it says what is wrong and which command fixes it.
        do {
            _ = try t.store.add(path: try t.file([1, 2, 3]))
            Issue.record("an add extended a short pack")
        } catch let error as StoreError {
            #expect(error.code == .indexCorrupt && error.message.contains("verify --repair"))
        }
        #expect(try t.store.packDrift().advice?.contains("verify --repair") == true)
        _ = try ContentStore.rebuildIndex(directory: t.directory)
        _ = try t.reopen().add(path: try t.file([1, 2, 3]))
    }

    @Test func budgetExceededLosesNothing() throws {
        var options = StoreOptions()
        options.budgetBytes = 3 << 20
        let t = try TemporaryStore(options: options)
        let keep = TestData.random(2 << 20, seed: 7)
        let kept = try t.store.add(path: try t.file(keep)).address
        let sizeBefore = t.packPaths().map {
            (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0
        }
        #expect(throws: StoreError(.budgetExceeded, "")) {
            try t.store.add(path: try t.file(TestData.random(2 << 20, seed: 8)))
        }
        let sizeAfter = t.packPaths().map {
            (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0
        }
        #expect(sizeBefore == sizeAfter)
        #expect(try readAll(t.store, kept) == keep)
        #expect(try t.store.list().map(\.address) == [kept])
        #expect(try t.store.verify().isClean)
    }

    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func fullDiskLosesNothing() throws {
        let mount = FileManager.default.temporaryDirectory.path + "/alexandria-full-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        defer {
            _ = umountPath(mount)
            try? FileManager.default.removeItem(atPath: mount)
        }
        guard runMount(["-t", "tmpfs", "-o", "size=6m", "tmpfs", mount]) == 0 else {
            Issue.record("could not mount a tmpfs at \(mount)")
            return
        }
        let t = try TemporaryStore(in: mount)
        let keep = TestData.random(1 << 20, seed: 9)
        let source = FileManager.default.temporaryDirectory.path + "/alexandria-src-\(UUID().uuidString)"
        try Data(keep).write(to: URL(fileURLWithPath: source))
        defer { try? FileManager.default.removeItem(atPath: source) }
        let kept = try t.store.add(path: source)
        let big = FileManager.default.temporaryDirectory.path + "/alexandria-big-\(UUID().uuidString)"
        try Data(TestData.random(12 << 20, seed: 10)).write(to: URL(fileURLWithPath: big))
        defer { try? FileManager.default.removeItem(atPath: big) }
        #expect(throws: StoreError(.diskFull, "")) { try t.store.add(path: big) }
        #expect(try readAll(t.store, kept.address) == keep)
        #expect(try t.store.verify().isClean)
    }

    @Test func fileThatChangesWhileAddedIsRefused() throws {
        var options = StoreOptions()
        options.segmentBytes = 1 << 20
        let t = try TemporaryStore(options: options)
        let path = try t.file(TestData.random(6 << 20, seed: 11))
        var touched = false
        #expect(throws: StoreError(.fileChanged, "")) {
            try t.store.add(path: path) { _ in
                if !touched {
                    touched = true
                    let handle = FileHandle(forWritingAtPath: path)!
                    try? handle.seek(toOffset: 4 << 20)
                    try? handle.write(contentsOf: [1, 2, 3])
                    try? handle.close()
                }
            }
        }
        #expect(try t.store.list().isEmpty)
        #expect(try t.store.verify().isClean)
        // A file that shrinks mid-add is refused too.
        #expect(throws: StoreError(.fileChanged, "")) {
            try t.store.add(path: path) { _ in _ = truncate(path, 1000) }
        }
    }

    @Test func unreadablePathsGetClearErrors() throws {
        let t = try TemporaryStore()
        #expect(throws: StoreError(.unreadablePath, "")) { try t.store.add(path: t.directory + "/no-such-file") }
        #expect(throws: StoreError(.unreadablePath, "")) { try t.store.add(path: t.directory) }
    }

    @Test func removeThenCollectKeepsSharedChunks() throws {
        let t = try TemporaryStore()
        let shared = TestData.random(4 << 20, seed: 12)
        let a = try t.store.add(path: try t.file(shared + TestData.random(2 << 20, seed: 13))).address
        let b = try t.store.add(path: try t.file(shared + TestData.random(2 << 20, seed: 14))).address
        let before = try t.store.usage()
        #expect(try t.store.remove(a))
        #expect(!(try t.store.remove(a)))
        let report = try t.store.collectGarbage(compress: false)
        #expect(report.chunksRemoved > 0)
        #expect(report.bytesAfter < report.bytesBefore)
        let after = try t.store.usage()
        #expect(after.files == 1 && after.chunks < before.chunks)
        #expect(try readAll(t.store, b).count == 6 << 20)
        #expect(try t.store.recipe(of: a) == nil)
        #expect(try t.store.verify().isClean)
        // The removal survives an index rebuild.
        let rebuilt = try ContentStore.rebuildIndex(directory: t.directory)
        #expect(rebuilt.files == 1)
        let reopened = try t.reopen()
        #expect(try reopened.list().map(\.address) == [b])
    }

    @Test func gcCompressesWeightsAndReadsStayExact() throws {
        let t = try TemporaryStore()
        let weights = TestData.bf16(6 << 20, seed: 15)
        let random = TestData.random(2 << 20, seed: 16)
        let w = try t.store.add(path: try t.file(weights)).address
        let r = try t.store.add(path: try t.file(random)).address
        let report = try t.store.collectGarbage()
        #expect(report.chunksCompressed > 0)
        let usage = try t.store.usage()
        #expect(Double(usage.packBytes) < 0.85 * Double(weights.count + random.count))
        #expect(try readAll(t.store, w) == weights)
        #expect(try readAll(t.store, r) == random)
        #expect(try t.store.verify().isClean)
        // A second gc has nothing left to offer the compressor.
        #expect(try t.store.collectGarbage().bytesOfferedToCompressor == 0)
    }

    @Test func indexRebuiltFromPacksAfterTheIndexIsLost() throws {
        let t = try TemporaryStore()
        let one = TestData.random(3 << 20, seed: 17)
        let two = TestData.bf16(3 << 20, seed: 18)
        let a = try t.store.add(path: try t.file(one)).address
        let b = try t.store.add(path: try t.file(two)).address
        _ = try t.store.collectGarbage()
        for suffix in ["", "-wal", "-shm"] { unlink(t.directory + "/index.sqlite" + suffix) }
        let report = try ContentStore.rebuildIndex(directory: t.directory)
        #expect(report.files == 2 && report.damagedChunks == 0 && report.incompleteFiles.isEmpty)
        let store = try t.reopen()
        #expect(Set(try store.list().map(\.address)) == [a, b])
        #expect(try readAll(store, a) == one)
        #expect(try readAll(store, b) == two)
        #expect(try store.verify().isClean)
        // And adds continue after the rebuild.
        _ = try store.add(path: try t.file(TestData.random(100_000, seed: 19)))
        #expect(try store.verify().isClean)
    }

    @Test func truncatedIndexGivesAClearErrorAndRepairWorks() throws {
        let t = try TemporaryStore()
        let data = TestData.random(2 << 20, seed: 20)
        let address = try t.store.add(path: try t.file(data)).address
        try t.store.writerConnection.withLock { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
        let index = t.directory + "/index.sqlite"
        let size = try #require(FileManager.default.attributesOfItem(atPath: index)[.size] as? Int)
        #expect(truncate(index, off_t(size / 2)) == 0)
        do {
            let store = try t.reopen()
            _ = try store.verify()
            _ = try readAll(store, address)
            Issue.record("a truncated index was used without complaint")
        } catch let error as StoreError {
            #expect(error.code == .indexCorrupt)
            #expect(error.message.contains("verify --repair"))
        }
        _ = try ContentStore.rebuildIndex(directory: t.directory)
        #expect(try readAll(t.reopen(), address) == data)
    }

    @Test func readersRunWhileAWriterAdds() async throws {
        let t = try TemporaryStore()
        let first = TestData.random(4 << 20, seed: 21)
        let address = try t.store.add(path: try t.file(first)).address
        let second = try t.file(TestData.random(24 << 20, seed: 22))
        let store = t.store
        try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                _ = try store.add(path: second)
                return 0
            }
            for _ in 0..<2 {
                group.addTask {
                    var reads = 0
                    for _ in 0..<6 {
                        var out: [UInt8] = []
                        try store.read(address) { out += $0 }
                        if out == first { reads += 1 }
                    }
                    return reads
                }
            }
            var good = 0
            for try await n in group { good += n }
            #expect(good == 12)
        }
        #expect(try store.list().count == 2)
    }

    @Test func linkedChunksAreReadVerifiedAndAChangedFileReadsAsMissing() throws {
        let t = try TemporaryStore()
        let data = TestData.random(3_000_000, seed: 11)
        let path = try t.file(data, name: "fetched.bin")
        var chunks: [ChunkRef] = []
        var offset = 0
        for length in Chunker().chunkLengths(data) {
            let id = ContentHash.of(Array(data[offset..<offset + length]))
            chunks.append(ChunkRef(id: id, offset: UInt64(offset), length: UInt32(length)))
            offset += length
        }
        #expect(chunks.count >= 3)
        let recipe = FileRecipe(address: ContentHash.of(data), size: UInt64(data.count), chunker: .v1, chunks: chunks)
        try t.store.link(
            chunks.map { LinkedChunk(id: $0.id, offset: $0.offset, length: Int($0.length)) }, inFile: path)
        try t.store.registerFile(recipe)
        #expect(try readAll(t.store, recipe.address) == data)
        #expect(try t.store.linkedUsage().chunks == chunks.count)
        #expect(try t.store.usage().packBytes < 4096, "linked chunks take no pack space")
        // One byte changed inside chunk 1: that chunk reads as missing, never as the changed bytes; the rest stay.
        try flipByte(in: path, at: Int(chunks[1].offset) + 5)
        #expect(throws: StoreError.self) { try readAll(t.store, recipe.address) }
        #expect(throws: StoreError.self) { try t.store.chunk(chunks[1].id) }
        #expect(try t.store.chunk(chunks[0].id) == Array(data[0..<Int(chunks[0].length)]))
        let report = try t.store.verify()
        #expect(report.incompleteFiles == [recipe.address])
        // Truncated: the later chunks are reported too, with the file named.
        truncate(path, off_t(chunks[2].offset + 10))
        let truncated = try t.store.verify()
        #expect(truncated.problems.contains { $0.chunk == chunks[2].id && $0.message.contains(path) })
        // Removing the file and collecting garbage forgets the links and leaves the user's file alone.
        try t.store.remove(recipe.address)
        _ = try t.store.collectGarbage()
        #expect(try t.store.linkedUsage().chunks == 0)
        #expect(FileManager.default.fileExists(atPath: path))
    }

    /// A full rebuild (verify --repair on an index whose rows are wrong) keeps what only the index knew: the links
    /// of a fetched file held by reference, as the incremental catch-up does.
    @Test func aFullRebuildKeepsTheLinksTheOldIndexCanGive() throws {
        let t = try TemporaryStore()
        let data = TestData.random(2_500_000, seed: 13)
        let path = try t.file(data, name: "fetched.bin")
        var chunks: [ChunkRef] = []
        var offset = 0
        for length in Chunker().chunkLengths(data) {
            chunks.append(
                ChunkRef(
                    id: ContentHash.of(Array(data[offset..<offset + length])), offset: UInt64(offset),
                    length: UInt32(length)))
            offset += length
        }
        let recipe = FileRecipe(address: ContentHash.of(data), size: UInt64(data.count), chunker: .v1, chunks: chunks)
        try t.store.link(
            chunks.map { LinkedChunk(id: $0.id, offset: $0.offset, length: Int($0.length)) }, inFile: path)
        try t.store.registerFile(recipe)
        let other = TestData.random(700_000, seed: 14)
        let added = try t.store.add(path: try t.file(other))
        #expect(try t.store.rowProblems().isEmpty)
        // A value flipped inside a files row (its size): SQLite's structure checks cannot see it; the row check does.
        try t.store.writerConnection.withLock {
            try $0.statement("UPDATE files SET size = size + 1 WHERE address = ?").bind(.blob(added.address.bytes))
                .run()
        }
        #expect(try t.store.rowProblems().count == 1)
        t.store.closeIndex()
        let rebuilt = try ContentStore.rebuildIndex(directory: t.directory)
        #expect(rebuilt.linkedChunks == chunks.count && rebuilt.incompleteFiles.isEmpty)
        let store = try t.reopen()
        #expect(try store.rowProblems().isEmpty)
        #expect(try readAll(store, recipe.address) == data)
        #expect(try readAll(store, added.address) == other)
        #expect(try store.verify().isClean)
    }

    @Test func addingAFileWhoseChunksAreLinkedStoresItsOwnCopy() throws {
        let t = try TemporaryStore()
        let data = TestData.random(2_000_000, seed: 12)
        let path = try t.file(data, name: "fetched.bin")
        let lengths = Chunker().chunkLengths(data)
        var links: [LinkedChunk] = []
        var offset = 0
        for length in lengths {
            links.append(
                LinkedChunk(
                    id: ContentHash.of(Array(data[offset..<offset + length])), offset: UInt64(offset), length: length))
            offset += length
        }
        try t.store.link(links, inFile: path)
        let added = try t.store.add(path: try t.file(data))
        #expect(added.newBytes == UInt64(data.count), "an add must not depend on a file the user may delete")
        #expect(try t.store.linkedUsage().chunks == 0)
        try FileManager.default.removeItem(atPath: path)
        #expect(try readAll(t.store, added.address) == data)
    }

    @Test func storeFromANewerVersionIsRefused() throws {
        let t = try TemporaryStore()
        try t.store.writerConnection.withLock { try $0.execute("PRAGMA user_version = 99") }
        #expect(throws: StoreError(.unsupportedVersion, "")) { try t.reopen() }
    }

    @Test func missingStoreSaysRunInit() {
        #expect(throws: StoreError(.notInitialized, "")) {
            try ContentStore(directory: "/nonexistent/alexandria-store")
        }
    }
}

private func runMount(_ arguments: [String]) -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/mount")
    process.arguments = arguments
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return -1 }
    process.waitUntilExit()
    return process.terminationStatus
}

private func umountPath(_ path: String) -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/umount")
    process.arguments = [path]
    do { try process.run() } catch { return -1 }
    process.waitUntilExit()
    return process.terminationStatus
}
