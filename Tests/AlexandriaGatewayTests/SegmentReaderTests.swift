import AlexandriaCore
import Foundation
import NIOCore
import Testing

@testable import AlexandriaGateway
@testable import AlexandriaStore

/// The gateway's reader threads against a real store: what they return is what was added, chunk for chunk verified.
@Suite("Gateway segment readers")
struct SegmentReaderTests {
    /// A fresh store in a temporary directory.
    final class Store {
        let directory = FileManager.default.temporaryDirectory.path + "/alexandria-gw-\(UUID().uuidString)"
        let store: ContentStore

        init() throws {
            try ContentStore.initialize(at: directory)
            store = try ContentStore(directory: directory)
        }

        /// Adds `bytes` as a file, chunked with `chunker`.
        func add(_ bytes: [UInt8], chunker: ChunkerParameters) throws -> FileRecipe {
            var options = StoreOptions()
            options.chunker = chunker
            let path = directory + "/\(UUID().uuidString).bin"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let address = try ContentStore(directory: directory, options: options).add(path: path).address
            try FileManager.default.removeItem(atPath: path)
            return try #require(try store.recipe(of: address))
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// bf16-like weights: random low bytes, high (sign and exponent) bytes from a handful of values, so the
    /// compressor stores them byte-grouped.
    static func weights(_ count: Int, seed: UInt64) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            var state = seed | 1
            var i = 0
            while i + 1 < count {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                out[i] = UInt8(truncatingIfNeeded: state)
                out[i + 1] = 0x3c + UInt8(truncatingIfNeeded: (state >> 32) % 3)
                i += 2
            }
            if i < count { out[i] = 0 }
            initialized = count
        }
    }

    /// Chunks `chunks` (all by default) of a stored file through the readers, as the gateway sends them.
    static func read(
        _ readers: SegmentReaders, _ store: ContentStore, _ recipe: FileRecipe, chunks: Range<Int>? = nil
    ) async throws -> [UInt8] {
        let chunks = chunks ?? 0..<recipe.chunks.count
        let buffer = try await readers.read(
            try store.locate(recipe, chunks: chunks), chunks: chunks, range: 0..<recipe.size)
        return Array(buffer.readableBytesView)
    }

    /// Regression (fixed in 5e45445): a reader's scratch made for the default chunker (1 MiB maximum) was reused for a
    /// file chunked with a larger maximum; its byte-grouped chunks over 1 MiB did not decode in it, read as damaged,
    /// and were marked bad. One reader thread, so the second read is handed the first one's scratch if it fits.
    @Test func aFileWithALargerMaximumChunkReadsAfterADefaultOne() async throws {
        let t = try Store()
        let small = Self.weights(2 << 20, seed: 5)
        let large = Self.weights(8 << 20, seed: 6)
        let smallRecipe = try t.add(small, chunker: .v1)
        let largeRecipe = try t.add(large, chunker: try #require(ChunkerParameters(averageBits: 20)))
        try t.store.sealOpenPacks()
        while try t.store.compressOneIdlePack() != nil {}
        // The case the bug needs: a byte-grouped chunk too long for the decode space of a scratch made for the
        // default chunker (its largest chunk and an eighth, plus 1 KiB).
        let run = try t.store.locate(largeRecipe, chunks: 0..<largeRecipe.chunks.count)
        let fitsDefault = ChunkerParameters.v1.maxSize + ChunkerParameters.v1.maxSize / 8 + 1024
        #expect(
            run.locations.contains { $0.codec == .byteGrouped && $0.rawLength > fitsDefault },
            "no byte-grouped chunk over \(fitsDefault) bytes: the test does not test the bug")

        let readers = SegmentReaders(store: t.store, threads: 1)
        readers.start()
        #expect(try await Self.read(readers, t.store, smallRecipe) == small)
        #expect(try await Self.read(readers, t.store, largeRecipe) == large)
        #expect(try await Self.read(readers, t.store, smallRecipe) == small)
        // Nothing was marked damaged on the way.
        #expect(try t.store.holds(largeRecipe.chunks.map(\.id)).count == Set(largeRecipe.chunks.map(\.id)).count)
        await readers.shutdown()
    }

    /// Raw chunks are read straight into the send buffer; a damaged byte in one (payload or header) is still caught by
    /// its hash or header check: the read throws, nothing is returned, and the chunk reads as missing after.
    @Test func aDamagedRawChunkIsNeverReturned() async throws {
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in bytes.indices {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        let t = try Store()
        let recipe = try t.add(bytes, chunker: .v1)
        let readers = SegmentReaders(store: t.store, threads: 1)
        readers.start()
        #expect(try await Self.read(readers, t.store, recipe) == bytes)
        let run = try t.store.locate(recipe, chunks: 0..<recipe.chunks.count)
        #expect(run.locations.allSatisfy { $0.codec == .raw })
        // One chunk's payload, another's header; each read alone, with its neighbour (read in a pair).
        let victims = [(1, PackRecordHeader.size + 100), (3, 9)]
        for (index, at) in victims {
            let location = run.locations[index]
            let handle = try #require(FileHandle(forUpdatingAtPath: t.store.packs.path(location.pack)))
            try handle.seek(toOffset: UInt64(location.offset + at))
            let byte = try #require(try handle.read(upToCount: 1))
            try handle.seek(toOffset: UInt64(location.offset + at))
            try handle.write(contentsOf: Data([byte[0] ^ 0x01]))
            try handle.close()
            await #expect(throws: StoreError.self) {
                _ = try await Self.read(readers, t.store, recipe, chunks: index - 1..<index + 1)
            }
            #expect(try t.store.holds([location.id]).isEmpty, "the damaged chunk was not marked bad")
        }
        await readers.shutdown()
    }
}
