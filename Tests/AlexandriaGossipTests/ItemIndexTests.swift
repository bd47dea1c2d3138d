import AlexandriaCore
import AlexandriaGossip
import Testing

@Suite("Item index: range fingerprints without rehashing")
struct ItemIndexTests {
    /// A seeded id stream, so a failure replays.
    struct Ids {
        var state: UInt64
        mutating func next() -> ContentHash {
            state &+= 1
            return ContentHash.of(withUnsafeBytes(of: state.bigEndian) { Array($0) })
        }
    }

    /// Inserts one at a time (so blocks split), in batches, removes runs and single ids: after every change the index
    /// answers every query exactly as a sorted array of the same ids does.
    @Test func agreesWithASortedArrayThroughInsertsSplitsAndRemovals() {
        var source = Ids(state: 1)
        var index = ItemIndex()
        var reference: Set<ContentHash> = []
        func check(_ what: String) {
            let sorted = reference.sorted()
            #expect(index.all == sorted, "\(what)")
            #expect(index.count == sorted.count && index.sum == IDSum(sorted), "\(what)")
            guard !sorted.isEmpty else { return }
            for k in stride(from: 0, to: sorted.count, by: max(1, sorted.count / 37)) {
                #expect(index.id(at: k) == sorted[k] && index.rank(sorted[k]) == k && index.contains(sorted[k]))
                let end = min(sorted.count, k + (k * 7919) % 700)
                #expect(index.ids(k..<end) == Array(sorted[k..<end]), "\(what) \(k)..<\(end)")
                #expect(index.sum(k..<end) == IDSum(sorted[k..<end]), "\(what) sum \(k)..<\(end)")
                #expect(index.sum(before: k) == IDSum(sorted[..<k]))
            }
            let absent = ContentHash.of([1, 2, 3])
            #expect(!index.contains(absent) && index.rank(absent) == sorted.filter { $0 < absent }.count)
        }
        for _ in 0..<1500 {
            let id = source.next()
            index.insert([id])
            reference.insert(id)
        }
        check("one at a time")
        let batch = (0..<2000).map { _ in source.next() }
        #expect(index.insert(batch + batch.prefix(10)) == 2000, "duplicates in a batch count once")
        reference.formUnion(batch)
        check("a batch")
        let sorted = reference.sorted()
        let gone = Array(sorted[100..<900]) + [sorted[0], sorted[sorted.count - 1], ContentHash.of([9])]
        #expect(index.remove(gone) == 802)
        reference.subtract(gone)
        check("removals")
        #expect(index.remove(reference) == reference.count)
        reference.removeAll()
        check("emptied")
        #expect(index.sum == .zero && index.isEmpty)
        index.insert(batch.prefix(5))
        reference.formUnion(batch.prefix(5))
        check("refilled")
        // Built from an unsorted list with duplicates: sorted and de-duplicated.
        let built = ItemIndex(sorted: batch.reversed() + batch.prefix(3))
        #expect(built.all == batch.sorted())
    }

    @Test func sumsWrapModulo2To256AndSubtractionUndoesAddition() {
        let top = ContentHash(bytes: [UInt8](repeating: 0xFF, count: 32))!
        let one = ContentHash(bytes: [UInt8](repeating: 0, count: 31) + [1])!
        #expect(IDSum([top, one]) == .zero)
        let a = IDSum([ContentHash.of([1]), ContentHash.of([2])])
        let b = IDSum([ContentHash.of([3]), top])
        var c = a
        c.add(b)
        #expect(c - b == a && c - a == b)
        #expect(IDSum([one]).bytes == [UInt8](repeating: 0, count: 31) + [1])
    }

    /// The fingerprint of an index's range is the fingerprint of that range's ids (what the vectors define), and
    /// reconciliation over indexes ends with both sides knowing exactly what they lack.
    @Test func indexFingerprintsAreTheSpecFingerprintsAndReconciliationConverges() throws {
        var source = Ids(state: 99)
        let common = (0..<5000).map { _ in source.next() }
        let onlyA = (0..<40).map { _ in source.next() }
        let onlyB = (0..<7).map { _ in source.next() }
        let a = ItemIndex(sorted: common + onlyA)
        var b = ItemIndex(sorted: common)
        b.insert(onlyB)
        let open = Reconciler.open(a)
        #expect(
            open == [
                .init(upper: .infinity, mode: .fingerprint(count: 5040, fingerprint: Reconciler.fingerprint(a.all)))
            ])
        var lacks: [Set<ContentHash>] = [[], []]
        var message: [Reconciler.Range]? = open
        var sender = 0
        var rounds = 0
        while let m = message, rounds < 20 {
            rounds += 1
            let step = try Reconciler.step(sender == 0 ? b : a, message: m)
            // The same answer as the array form.
            #expect(try Reconciler.step((sender == 0 ? b : a).all, message: m) == step)
            lacks[1 - sender].formUnion(step.weLack)
            lacks[sender].formUnion(step.theyLack)
            message = step.reply
            sender = 1 - sender
        }
        #expect(lacks[0] == Set(onlyB) && lacks[1] == Set(onlyA))
        // Equal sets: one message and done.
        #expect(try Reconciler.step(a, message: Reconciler.open(a)).reply == nil)
    }
}

@Suite("Reconciliation: pulling a large difference, announcing ids")
struct ReconcilePullTests {
    static func ids(_ label: String, _ n: Int) -> [ContentHash] {
        (0..<n).map { ContentHash.of(Array("\(label)-\($0)".utf8)) }
    }

    /// A node behind sends its id list; the peer, lacking none of them, answers with its ids (in lists of at most
    /// `maxIDsPerRange`) instead of the items, so the node pulls them, each from one peer.
    @Test func aNodeFarBehindIsAnsweredWithIDsItPullsFrom() throws {
        let shared = Self.ids("s", 10)
        let more = Self.ids("m", 150)
        let behind = ItemIndex(sorted: shared)
        let ahead = ItemIndex(sorted: shared + more)
        let answer = try Reconciler.step(ahead, message: [.init(upper: .infinity, mode: .ids(behind.all))])
        #expect(answer.theyLack.isEmpty && answer.weLack.isEmpty)
        let lists = try #require(answer.reply).compactMap { r -> [ContentHash]? in
            if case .ids(let l) = r.mode { l } else { nil }
        }
        #expect(lists.count == 3 && lists.allSatisfy { $0.count <= GossipLimits.maxIDsPerRange })
        #expect(lists.flatMap { $0 } == ahead.all)
        let pulled = try Reconciler.step(behind, message: answer.reply!)
        #expect(Set(pulled.weLack) == Set(more) && pulled.theyLack.isEmpty && pulled.reply == nil)
        // Even one missing is pulled: the answer lists the range instead of sending the item.
        let small = ItemIndex(sorted: shared + more.prefix(40))
        let one = try Reconciler.step(
            small, message: [.init(upper: .infinity, mode: .ids(Array(small.all.dropFirst())))])
        #expect(
            one.theyLack.isEmpty && one.weLack.isEmpty && one.reply == [.init(upper: .infinity, mode: .ids(small.all))])
        // Missing some of the list too: both differences at once, as before (no ping-pong of lists).
        let mixed = try Reconciler.step(ahead, message: [.init(upper: .infinity, mode: .ids([ContentHash.of([7])]))])
        #expect(mixed.weLack == [ContentHash.of([7])] && mixed.theyLack.count == ahead.count && mixed.reply == nil)
    }

    /// An announcement names ids and nothing else: a peer lacking one asks for it, a peer holding them answers
    /// nothing, and it is a well-formed RECONCILE.
    @Test func anAnnouncementIsAskedForOnlyByPeersLackingIt() throws {
        let a = Self.ids("a", 3)
        let message = Reconciler.announce(a)
        #expect(message.count == 7 && message.last?.upper == .infinity)
        let holder = ItemIndex(sorted: a + Self.ids("other", 500))
        let held = try Reconciler.step(holder, message: message)
        #expect(held.reply == nil && held.weLack.isEmpty && held.theyLack.isEmpty)
        let lacking = ItemIndex(sorted: [a[1]] + Self.ids("other", 500))
        let asked = try Reconciler.step(lacking, message: message)
        #expect(Set(asked.weLack) == [a[0], a[2]] && asked.theyLack.isEmpty && asked.reply == nil)
        let many = Self.ids("many", 1000)
        #expect(Reconciler.announce(many).count == 2 * Reconciler.maxAnnounced + 1)
        #expect(Reconciler.announce(many).count <= GossipLimits.maxRanges)
    }
}
