import AlexandriaCore
import Foundation
import Testing

@Suite("Chunking against Protocol/test-vectors")
struct ChunkingTests {
    static let cases = (try? Vectors.load("chunking.json", as: Vectors.ChunkingFile.self).cases) ?? []

    @Test func vectorsArePresent() throws {
        let file = try Vectors.load("chunking.json", as: Vectors.ChunkingFile.self)
        #expect(file.version == 1)
        #expect(file.cases.count >= 8)
    }

    @Test func gearTableMatchesSpec() throws {
        let text = try String(contentsOf: Vectors.directory.appendingPathComponent("gear-table.txt"), encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 256)
        for (i, line) in lines.enumerated() {
            #expect(UInt64(line, radix: 16) == GearTable.values[i], "gear[\(i)]")
        }
    }

    @Test(arguments: cases.map(\.name))
    func chunkBoundariesIdsAndRoot(name: String) throws {
        let c = try #require(Self.cases.first { $0.name == name })
        let parameters = try #require(ChunkerParameters(averageBits: c.averageBits))
        #expect(parameters.description == c.chunker)
        #expect(ChunkerParameters(parsing: c.chunker) == parameters)
        let data = Vectors.bytes(c.data)
        #expect(ContentHash.of(data).description == c.address)
        let lengths = Chunker(parameters: parameters).chunkLengths(data)
        #expect(lengths == c.chunks.map { Int($0.length) })
        var refs: [ChunkRef] = []
        var offset = 0
        for (i, length) in lengths.enumerated() {
            let id = ContentHash.of(data[offset..<offset + length])
            #expect(id.description == c.chunks[i].id)
            #expect(UInt64(offset) == c.chunks[i].offset)
            refs.append(ChunkRef(id: id, offset: UInt64(offset), length: UInt32(length)))
            offset += length
        }
        let recipe = FileRecipe(
            address: ContentHash.of(data), size: UInt64(data.count), chunker: parameters, chunks: refs)
        try recipe.validateLayout()
        #expect(recipe.merkleRoot.description == c.merkleRoot)
        for example in c.rangeExamples ?? [] {
            let range = example.range[0]..<example.range[1]
            let indices = recipe.chunkIndices(covering: range)
            #expect([indices.lowerBound, indices.upperBound] == example.chunkIndices, "range \(example.range)")
        }
    }

    /// Feeding the chunker a stream in windows of any size must cut exactly where the whole-buffer pass cuts.
    @Test(arguments: [1, 7, 4096, 70_000, 1 << 20])
    func streamingMatchesWholeBuffer(window: Int) {
        let parameters = ChunkerParameters(averageBits: 12)!
        let chunker = Chunker(parameters: parameters)
        let data = Vectors.counterBytes(seed: 99, length: 300_000)
        let whole = chunker.chunkLengths(data)
        var streamed: [Int] = []
        var start = 0
        var available = min(window, data.count)
        data.withUnsafeBytes { all in
            while start < data.count {
                let isFinal = available == data.count
                let view = UnsafeRawBufferPointer(rebasing: all[start..<available])
                if let length = chunker.nextChunkLength(view, isFinal: isFinal) {
                    streamed.append(length)
                    start += length
                } else {
                    available = min(available + window, data.count)
                }
            }
        }
        #expect(streamed == whole)
    }

    /// The same with the search resumed where it stopped (what ingest does across its read segments): the cuts do
    /// not move, at either average size's mask, whatever the window.
    @Test(arguments: [1, 7, 4096, 70_000, 1 << 20])
    func resumedSearchMatchesWholeBuffer(window: Int) {
        for averageBits in [12, 14] {
            let chunker = Chunker(parameters: ChunkerParameters(averageBits: averageBits)!)
            let data = Vectors.counterBytes(seed: 98, length: 600_000)
            let whole = chunker.chunkLengths(data)
            var streamed: [Int] = []
            var start = 0
            var available = min(window, data.count)
            var state: Chunker.ScanState?
            data.withUnsafeBytes { all in
                while start < data.count {
                    let isFinal = available == data.count
                    let view = UnsafeRawBufferPointer(rebasing: all[start..<available])
                    if let length = chunker.nextChunkLength(view, isFinal: isFinal, resuming: &state) {
                        #expect(state == nil)
                        streamed.append(length)
                        start += length
                    } else {
                        available = min(available + window, data.count)
                    }
                }
            }
            #expect(streamed == whole, "average 2^\(averageBits), window \(window)")
        }
    }

    @Test func chunkSizesStayWithinBounds() {
        let parameters = ChunkerParameters(averageBits: 14)!
        let data = Vectors.counterBytes(seed: 5, length: 4 << 20)
        let lengths = Chunker(parameters: parameters).chunkLengths(data)
        #expect(lengths.reduce(0, +) == data.count)
        for length in lengths.dropLast() {
            #expect(length > parameters.minSize && length <= parameters.maxSize)
        }
        // Normalised chunking keeps the mean near the average (the spec says about 1.14 × 2^b on random data).
        let mean = Double(data.count) / Double(lengths.count)
        #expect(mean > Double(parameters.averageSize) * 0.9 && mean < Double(parameters.averageSize) * 1.5)
    }

    @Test func insertionOnlyDisturbsNearbyChunks() {
        let chunker = Chunker(parameters: ChunkerParameters(averageBits: 12)!)
        let original = Vectors.counterBytes(seed: 11, length: 400_000)
        var shifted = Array("a longer header".utf8)
        shifted += original
        func ids(_ bytes: [UInt8]) -> Set<ContentHash> {
            var offset = 0
            var out = Set<ContentHash>()
            for length in chunker.chunkLengths(bytes) {
                out.insert(ContentHash.of(bytes[offset..<offset + length]))
                offset += length
            }
            return out
        }
        let a = ids(original)
        let b = ids(shifted)
        #expect(Double(a.intersection(b).count) / Double(a.count) > 0.95)
    }

    @Test func chunkerNamesParseStrictly() {
        #expect(ChunkerParameters(parsing: "fastcdc-gear-v1/65536/262144/1048576") == .v1)
        for bad in [
            "fastcdc-gear-v1/65536/+262144/1048576", "fastcdc-gear-v1/65536/0262144/1048576",
            "fastcdc-gear-v1/65536/262144", "fastcdc-gear-v2/65536/262144/1048576", "fastcdc-gear-v1/1/3/4",
            "fastcdc-gear-v1/16/64/256",
        ] {
            #expect(ChunkerParameters(parsing: bad) == nil, "\(bad)")
        }
    }
}
