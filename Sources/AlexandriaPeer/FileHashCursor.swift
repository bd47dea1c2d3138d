import AlexandriaCore
import AlexandriaStore
import Foundation

/// The whole-file SHA-256 of a fetch's output, computed while chunks arrive instead of in a pass at the end.
///
/// A chunk that arrives in file order is hashed once with the two-way kernel: its own digest (checked against its
/// id before anything is written) and the file stream advance together over the same bytes. A chunk that arrives
/// early is hashed alone and kept in memory (up to `parkBudget` bytes) or, past that, left in the output file; the
/// stream picks it up when the gap before it closes. `finish` reads whatever is still unhashed back from the output
/// file, so the digest always covers the file's bytes as written.
final class FileHashCursor: @unchecked Sendable {
    private let recipe: FileRecipe
    private let lock = NSLock()
    private var stream = SHA256Stream()
    /// Index of the next chunk the stream needs.
    private var next = 0
    /// Verified bytes of chunks that arrived early, by id.
    private var parked: [ContentHash: [UInt8]] = [:]
    private var parkedBytes = 0
    /// Ids whose verified bytes are in the output file at every offset they occupy.
    private var inFile: Set<ContentHash> = []
    /// How many positions at or after `next` still use each id.
    private var uses: [ContentHash: Int] = [:]
    let parkBudget: Int

    init(recipe: FileRecipe, parkBudget: Int = 32 << 20) {
        self.recipe = recipe
        self.parkBudget = parkBudget
        for chunk in recipe.chunks { uses[chunk.id, default: 0] += 1 }
    }

    /// Checks `bytes` against `id`. True if they match; when they are the chunk the stream needs next, the stream has
    /// taken them too (and `written` must still be called once they are in the file, to release later positions).
    func verify(_ id: ContentHash, _ bytes: UnsafeRawBufferPointer) -> Bool {
        lock.lock()
        if next < recipe.chunks.count, recipe.chunks[next].id == id {
            var one = SHA256Stream()
            var candidate = stream
            SHA256Stream.update(&candidate, bytes, &one, bytes)
            if one.finalize() == id {
                stream = candidate
                consume(id)
                lock.unlock()
                return true
            }
            lock.unlock()
            return false
        }
        lock.unlock()
        return SHA256Stream.hash(bytes) == id
    }

    /// A verified chunk is now in the output file at all its offsets: the stream may move past it (and past chunks
    /// that were waiting for it). `bytes` are its bytes if the caller has them in memory, nil to read them back.
    func written(_ id: ContentHash, _ bytes: [UInt8]?, output: OutputFile) throws {
        lock.lock()
        defer { lock.unlock() }
        if (uses[id] ?? 0) > 0, parked[id] == nil, !inFile.contains(id) {
            if let bytes, parkedBytes + bytes.count <= parkBudget {
                parked[id] = bytes
                parkedBytes += bytes.count
            } else {
                inFile.insert(id)
            }
        }
        try advance(output: output, finishing: false)
    }

    /// The digest of the whole file: hashes what is left from the output file. Call once every chunk is written.
    func finish(output: OutputFile) throws -> ContentHash {
        lock.lock()
        defer { lock.unlock() }
        try advance(output: output, finishing: true)
        return stream.finalize()
    }

    private func consume(_ id: ContentHash) {
        next += 1
        uses[id, default: 1] -= 1
        if uses[id] == 0, let bytes = parked.removeValue(forKey: id) { parkedBytes -= bytes.count }
    }

    private func advance(output: OutputFile, finishing: Bool) throws {
        while next < recipe.chunks.count {
            let chunk = recipe.chunks[next]
            if let bytes = parked[chunk.id] {
                bytes.withUnsafeBytes { stream.update($0) }
            } else if finishing || inFile.contains(chunk.id) {
                try output.read(at: chunk.offset, length: Int(chunk.length)) { stream.update($0) }
            } else {
                return
            }
            consume(chunk.id)
        }
    }
}
