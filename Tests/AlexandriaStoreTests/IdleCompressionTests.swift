import AlexandriaCore
import Foundation
import Testing

@testable import AlexandriaStore

@Suite("Compression on idle")
struct IdleCompressionTests {
    @Test func oneSealedPackAtATimeReadsStayExactAndNothingIsDropped() throws {
        let t = try TemporaryStore()
        let weights = TestData.bf16(6 << 20, seed: 31)
        let w = try t.store.add(path: try t.file(weights)).address
        // The open pack is never taken: only sealed ones (1 GiB packs on a real node).
        #expect(try t.store.compressOneIdlePack() == nil)
        try t.store.sealOpenPacks()
        // A chunk stored but not yet registered (refs 0, as a fetch in progress leaves it) keeps its pack out.
        let loose = TestData.random(64 << 10, seed: 32)
        let looseID = loose.withUnsafeBytes { SHA256Stream.hash($0) }
        try t.store.put([VerifiedChunk(id: looseID, bytes: loose)!])
        try t.store.sealOpenPacks()
        let before = try t.store.usage().packBytes
        let report = try #require(try t.store.compressOneIdlePack())
        #expect(report.packsRewritten == 1 && report.chunksCompressed > 0)
        #expect(report.bytesAfter < report.bytesBefore)
        #expect(try t.store.usage().packBytes < before)
        #expect(try readAll(t.store, w) == weights)
        // The only other uncompressed pack holds the unregistered chunk: left alone, and the chunk is still there.
        #expect(try t.store.compressOneIdlePack() == nil)
        #expect(try t.store.holds([looseID]) == [looseID])
        #expect(try t.store.verify().isClean)
    }
}
