import AlexandriaCore
import Dispatch
import NIOCore
import Synchronization

/// How ranged reads of immutable objects are coalesced and read ahead (Protocol/store-s3.md, "Reads"). I/O-free:
/// given the windows already fetched or being fetched for one object, it says which byte range to GET next.
///
/// A reader that asks for bytes nobody fetched gets one window of `minWindowBytes` (or what it asked for, if more):
/// a lone read of one chunk record costs one small GET. A reader that asks for bytes inside a window fetched
/// earlier is reading on through the object (the records of a file are adjacent in its pack), so the windows past
/// it are fetched ahead, each twice the size of the one before up to `maxWindowBytes`, at most `lookahead` ahead.
/// A file read front to back thus costs about one GET per `maxWindowBytes` instead of one per chunk.
public struct ReadAheadPolicy: Sendable, Equatable {
    public var minWindowBytes = 1 << 20
    public var maxWindowBytes = 16 << 20
    /// Windows fetched ahead of the one being read.
    public var lookahead = 3
    /// Windows being fetched ahead at once, across all readers (demand reads are bounded by the client's limiter).
    public var maxPrefetches = 4
    /// Bytes of fetched windows kept for later reads; the least recently used go first.
    public var cacheBytes = 96 << 20

    public init() {}

    /// The window a reader that needs bytes from `offset` (up to `want` of them) fetches itself, given `windows`
    /// (sorted by start, not overlapping) of an object of `objectSize` bytes, none of which holds `offset`.
    public func demandWindow(at offset: Int, want: Int, objectSize: Int, windows: [Range<Int>]) -> Range<Int> {
        var size = minWindowBytes
        if let before = windows.last(where: { $0.upperBound == offset }) {
            size = max(size, min(maxWindowBytes, 2 * before.count))
        }
        size = max(size, min(want, maxWindowBytes))
        var end = min(objectSize, offset + size)
        if let next = windows.first(where: { $0.lowerBound > offset }) { end = min(end, next.lowerBound) }
        return offset..<max(end, offset)
    }

    /// The windows to fetch ahead of `current` (a window a reader went on into), at most `budget` of them, given
    /// `windows` (sorted, not overlapping, including `current`).
    public func aheadWindows(
        of current: Range<Int>, objectSize: Int, windows: [Range<Int>], budget: Int
    ) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var last = current
        var all = windows
        for _ in 0..<lookahead {
            let start = last.upperBound
            guard start < objectSize else { break }
            if let existing = all.first(where: { $0.contains(start) }) {
                last = existing
                continue
            }
            guard out.count < budget else { break }
            var end = min(objectSize, start + min(maxWindowBytes, max(minWindowBytes, 2 * last.count)))
            if let next = all.first(where: { $0.lowerBound > start }) { end = min(end, next.lowerBound) }
            let window = start..<end
            out.append(window)
            all.append(window)
            all.sort { $0.lowerBound < $1.lowerBound }
            last = window
        }
        return out
    }
}

/// Ranged reads of immutable objects for a synchronous caller, coalesced into windows and read ahead by
/// `ReadAheadPolicy`, with the fetched windows kept (bounded by `cacheBytes`) for the reads that follow.
///
/// It trusts nothing it fetched: it hands bytes to a caller that verifies them (the store checks every record
/// against its index entry and every chunk against its id). Objects are immutable (named by their hash), so a
/// window can never be stale. A window whose fetch failed is dropped, and the reader that needed it gets the error.
public final class RangeReadCache: Sendable {
    public let policy: ReadAheadPolicy
    /// Fetches bytes `range` of object `object` (one ranged GET).
    let fetch: @Sendable (ContentHash, Range<Int>) async throws -> ByteBuffer
    /// Runs an async body to completion for the calling (blocking) thread.
    let wait: @Sendable (@escaping @Sendable () async throws -> ByteBuffer) throws -> ByteBuffer
    /// Starts an async body without waiting for it.
    let spawn: @Sendable (@escaping @Sendable () async -> Void) -> Void
    private let state = Mutex(State())

    final class Window: @unchecked Sendable {
        let object: ContentHash
        let range: Range<Int>
        let prefetched: Bool
        /// Entered at creation, left once `bytes` or `error` is set: waiting on it orders the reads after the write.
        let done = DispatchGroup()
        var bytes: ByteBuffer?
        var error: (any Error)?
        /// Guarded by the cache's state lock.
        var lastUse: UInt64 = 0
        var counted = false

        init(object: ContentHash, range: Range<Int>, prefetched: Bool) {
            self.object = object
            self.range = range
            self.prefetched = prefetched
            done.enter()
        }
    }

    struct State {
        /// Per object, sorted by start, not overlapping.
        var windows: [ContentHash: [Window]] = [:]
        var loadedBytes = 0
        var clock: UInt64 = 0
        var prefetching = 0

        func find(_ object: ContentHash, containing offset: Int) -> Window? {
            windows[object]?.first { $0.range.contains(offset) }
        }

        mutating func insert(_ w: Window) {
            var list = windows[w.object] ?? []
            let at = list.firstIndex { $0.range.lowerBound > w.range.lowerBound } ?? list.count
            list.insert(w, at: at)
            windows[w.object] = list
        }

        mutating func remove(_ w: Window) {
            guard var list = windows[w.object], let i = list.firstIndex(where: { $0 === w }) else { return }
            list.remove(at: i)
            windows[w.object] = list.isEmpty ? nil : list
            if w.counted {
                loadedBytes -= w.range.count
                w.counted = false
            }
        }

        /// Drops the least recently used fetched windows until the kept bytes fit `limit` (windows being fetched
        /// stay: their readers are waiting; a reader holding an evicted window still reads its bytes).
        mutating func evict(to limit: Int) {
            while loadedBytes > limit {
                var oldest: Window?
                for list in windows.values {
                    for w in list where w.counted && (oldest == nil || w.lastUse < oldest!.lastUse) { oldest = w }
                }
                guard let oldest else { return }
                remove(oldest)
            }
        }
    }

    public init(
        policy: ReadAheadPolicy,
        fetch: @escaping @Sendable (ContentHash, Range<Int>) async throws -> ByteBuffer,
        wait: @escaping @Sendable (@escaping @Sendable () async throws -> ByteBuffer) throws -> ByteBuffer,
        spawn: @escaping @Sendable (@escaping @Sendable () async -> Void) -> Void
    ) {
        self.policy = policy
        self.fetch = fetch
        self.wait = wait
        self.spawn = spawn
    }

    /// Bytes of fetched windows held now.
    public var heldBytes: Int { state.withLock { $0.loadedBytes } }

    /// Copies bytes `range` of `object` (`objectSize` bytes long) into `buffer` and returns how many it copied
    /// (fewer only past the end of the object).
    public func read(
        object: ContentHash, objectSize: Int, range: Range<Int>, into buffer: UnsafeMutableRawBufferPointer
    ) throws -> Int {
        let end = min(range.upperBound, objectSize)
        var position = range.lowerBound
        var copied = 0
        while position < end {
            let (window, mine, ahead) = state.withLock { s -> (Window, Bool, [Window]) in
                s.clock += 1
                if let w = s.find(object, containing: position) {
                    w.lastUse = s.clock
                    // Reading on into a window fetched before: fetch the ones past it.
                    let ranges = policy.aheadWindows(
                        of: w.range, objectSize: objectSize, windows: (s.windows[object] ?? []).map(\.range),
                        budget: max(0, policy.maxPrefetches - s.prefetching))
                    let made = ranges.map { Window(object: object, range: $0, prefetched: true) }
                    for a in made { s.insert(a) }
                    s.prefetching += made.count
                    return (w, false, made)
                }
                let r = policy.demandWindow(
                    at: position, want: end - position, objectSize: objectSize,
                    windows: (s.windows[object] ?? []).map(\.range))
                let w = Window(object: object, range: r, prefetched: false)
                w.lastUse = s.clock
                s.insert(w)
                return (w, true, [])
            }
            for a in ahead {
                spawn { [self] in
                    do { complete(a, bytes: try await self.fetch(object, a.range)) } catch { complete(a, error: error) }
                    state.withLock { $0.prefetching -= 1 }
                }
            }
            if mine {
                do {
                    let fetch = self.fetch
                    let r = window.range
                    complete(window, bytes: try self.wait { try await fetch(object, r) })
                } catch {
                    complete(window, error: error)
                    throw error
                }
            } else {
                window.done.wait()
            }
            guard let bytes = window.bytes else {
                // A window fetched ahead failed: fetch what this read needs itself (its error is the one to report).
                if window.prefetched { continue }
                throw window.error ?? ObjectStoreError(.badResponse, "a ranged read failed")
            }
            let to = min(end, window.range.upperBound)
            let n = to - position
            bytes.withUnsafeReadableBytes { p in
                (buffer.baseAddress! + copied).copyMemory(
                    from: p.baseAddress! + (position - window.range.lowerBound), byteCount: n)
            }
            copied += n
            position = to
        }
        return copied
    }

    private func complete(_ w: Window, bytes: ByteBuffer) {
        guard bytes.readableBytes == w.range.count else {
            return complete(
                w,
                error: ObjectStoreError(
                    .badResponse, "a ranged read of \(w.range.count) bytes returned \(bytes.readableBytes)"))
        }
        w.bytes = bytes
        state.withLock { s in
            // A window fetched ahead counts as just used, or it would be the first evicted, before it is read.
            s.clock += 1
            w.lastUse = s.clock
            if s.windows[w.object]?.contains(where: { $0 === w }) == true {
                w.counted = true
                s.loadedBytes += w.range.count
                s.evict(to: policy.cacheBytes)
            }
        }
        w.done.leave()
    }

    private func complete(_ w: Window, error: any Error) {
        w.error = error
        state.withLock { $0.remove(w) }
        w.done.leave()
    }
}
