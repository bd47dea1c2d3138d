import AlexandriaCore
import AlexandriaStore
import CMalloc
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// The threads that read and verify file segments for all responses: a few (one per core), each with reusable
/// scratch space, so reading runs beside the event loop that sends and memory does not grow with the number of
/// connections. A segment is read straight into the `ByteBuffer` that is then written to the socket.
final class SegmentReaders: Sendable {
    let pool: NIOThreadPool
    let store: ContentStore
    private let scratch = Mutex<[ChunkReadScratch]>([])

    init(store: ContentStore, threads: Int) {
        self.store = store
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
    }

    /// Starts the threads (the gateway's `run`); `shutdown` stops them when it returns.
    func start() {
        _ = Self.reuseFreedSegments
        pool.start()
    }

    /// Largest allocation glibc serves from its heaps rather than a fresh mapping, and the free space a heap keeps
    /// before giving it back, for the whole process.
    static let mallocMmapThreshold: Int32 = 32 << 20
    static let mallocTrimThreshold: Int32 = 32 << 20

    /// Segment buffers (a megabyte or more, one per segment sent) are otherwise above glibc's mapping threshold or
    /// handed back at once when freed, so every segment was read into fresh pages: a page fault and a zeroed page
    /// per 4 KiB, a fifth of the gateway's CPU (perf, 1 GiB GET). Kept in the heap, freed buffers are reused.
    static let reuseFreedSegments: Bool = {
        mallopt(M_MMAP_THRESHOLD, mallocMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, mallocTrimThreshold) == 1
    }()
    func shutdown() async { try? await pool.shutdownGracefully() }

    /// Chunks `chunks` of `run`, verified, as one buffer holding `range` of the file (the part of those chunks that
    /// lies in it). Throws the store's error (`corruptChunk`, `missingChunk`) when a chunk fails; nothing is returned
    /// then.
    func read(_ run: ChunkRun, chunks: Range<Int>, range: Range<UInt64>) async throws -> ByteBuffer {
        let recipe = run.recipe
        let first = recipe.chunks[chunks.lowerBound]
        let last = recipe.chunks[chunks.upperBound - 1]
        let total = Int(last.end - first.offset)
        return try await pool.runIfActive {
            let store = self.store
            // A scratch decodes chunks up to the size it was made for: files with another chunker (a larger maximum)
            // get one large enough, or a good chunk would fail to decode and be marked damaged.
            let need = recipe.chunker.maxSize
            let scratch =
                self.scratch.withLock { pool in
                    pool.firstIndex { $0.maxChunk >= need }.map { pool.remove(at: $0) }
                } ?? ChunkReadScratch(maxChunk: need)
            defer { self.scratch.withLock { $0.append(scratch) } }
            var buffer = ByteBufferAllocator().buffer(capacity: total)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { destination in
                try store.readVerified(
                    run, chunks: chunks, into: UnsafeMutableRawBufferPointer(rebasing: destination[0..<total]),
                    scratch: scratch)
            }
            let from = Int(max(range.lowerBound, first.offset) - first.offset)
            let to = Int(min(range.upperBound, last.end) - first.offset)
            buffer.moveWriterIndex(to: to)
            buffer.moveReaderIndex(to: from)
            return buffer
        }
    }
}
