import AlexandriaCore
import AlexandriaStore
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
    func start() { pool.start() }
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
