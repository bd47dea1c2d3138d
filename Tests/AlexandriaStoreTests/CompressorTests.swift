import AlexandriaCore
import Testing

@testable import AlexandriaStore

/// The compressor verifies chunks two at a time through the two-way hash kernel: a damaged chunk in either place of
/// a pair is left behind and flagged, never encoded or copied, and its partner is compressed as usual.
@Suite("Compressor")
struct CompressorTests {
    @Test func damagedChunksInEitherPlaceOfAPairAreLeftBehind() throws {
        let t = try TemporaryStore()
        let weights = TestData.bf16(5 << 20, seed: 41)
        let path = try t.file(weights)
        let address = try t.store.add(path: path).address
        let recipe = try #require(try t.store.recipe(of: address))
        try #require(recipe.chunks.count >= 6)
        let pack = try #require(t.packPaths().first)
        // One add into a fresh store: its chunk records sit in file order from offset 0.
        var recordOffsets: [Int] = []
        var at = 0
        for chunk in recipe.chunks {
            recordOffsets.append(at)
            at += PackRecordHeader.size + Int(chunk.length)
        }
        // The first chunk of the first pair and the second chunk of the second pair.
        let damaged = [0, 3]
        for i in damaged { try flipByte(in: pack, at: recordOffsets[i] + PackRecordHeader.size + 100) }

        let report = try t.store.collectGarbage()
        #expect(report.chunksCompressed == recipe.chunks.count - damaged.count)
        for (i, chunk) in recipe.chunks.enumerated() {
            if damaged.contains(i) {
                #expect(throws: StoreError.self) { _ = try t.store.chunk(chunk.id) }
            } else {
                let expected = Array(weights[Int(chunk.offset)..<Int(chunk.end)])
                #expect(try t.store.chunk(chunk.id) == expected, "chunk \(i)")
            }
        }
        #expect(try t.store.verify().incompleteFiles == [address])
        // Treated as missing, and a re-add of the same bytes repairs the file.
        #expect(try t.store.add(path: path).newChunks == damaged.count)
        #expect(try readAll(t.store, address) == weights)
        #expect(try t.store.verify().isClean)
    }
}
