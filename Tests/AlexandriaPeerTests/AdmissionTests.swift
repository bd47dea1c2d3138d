import AlexandriaCore
import AlexandriaPeer
import AlexandriaWire
import Testing

/// The connection and peer-table rules, as values: no sockets, the clock passed in.
@Suite struct ClientAdmissionTests {
    @Test func oneAddressGetsNoMoreThanItsLimit() {
        var admission = ClientAdmission(limits: .init(total: 100, perAddress: 3))
        for _ in 0..<3 {
            guard case .admit(_, nil) = admission.admit(address: "10.0.0.1") else {
                Issue.record("refused within the limit")
                return
            }
        }
        guard case .refuse = admission.admit(address: "10.0.0.1") else {
            Issue.record("a fourth client from one address was admitted")
            return
        }
        guard case .admit = admission.admit(address: "10.0.0.2") else {
            Issue.record("another address was refused")
            return
        }
        #expect(admission.count == 4)
    }

    @Test func whenFullTheHeaviestAddressGivesUpItsOldestSlot() {
        var admission = ClientAdmission(limits: .init(total: 4, perAddress: 4))
        var tickets: [Int] = []
        for _ in 0..<4 {
            if case .admit(let t, _) = admission.admit(address: "attacker") { tickets.append(t) }
        }
        #expect(tickets.count == 4)
        // A newcomer is admitted and the attacker's oldest connection goes.
        #expect(admission.admit(address: "honest") == .admit(ticket: 4, evict: tickets[0]))
        #expect(admission.count == 4)
        #expect(admission.count(from: "attacker") == 3)
        // Shares even out, then no one is evicted for an address that already holds as much.
        #expect(admission.admit(address: "second") == .admit(ticket: 5, evict: tickets[1]))
        let again = admission.admit(address: "attacker")
        #expect(again.isRefusal)
        #expect(admission.admit(address: "third") == .admit(ticket: 6, evict: tickets[2]))
        let fourth = admission.admit(address: "fourth")
        #expect(fourth.isRefusal)
    }

    @Test func aReleasedSlotIsFreeAgain() {
        var admission = ClientAdmission(limits: .init(total: 1, perAddress: 1))
        guard case .admit(let t, _) = admission.admit(address: "a") else {
            Issue.record("refused")
            return
        }
        let second = admission.admit(address: "a")
        #expect(second.isRefusal)
        admission.release(t)
        admission.release(t)
        #expect(admission.count == 0)
        let third = admission.admit(address: "a")
        #expect(!third.isRefusal)
    }

    @Test func zeroClientsRefusesEveryClient() {
        var admission = ClientAdmission(limits: .init(total: 0, perAddress: 4))
        let decision = admission.admit(address: "a")
        #expect(decision.isRefusal)
    }
}

extension ClientAdmission.Decision {
    var isRefusal: Bool {
        if case .refuse = self { return true }
        return false
    }
}

@Suite struct PeerTableTests {
    let now = 1_800_000_000.0
    let me = String(repeating: "ee", count: 32)

    func key(_ i: Int) -> [UInt8] { Array(ContentHash.of(Array("k\(i)".utf8)).bytes) }

    func records(_ range: Range<Int>, host: String = "10.1.1.1", port: UInt16 = 7420) -> [PeerRecord] {
        range.map { PeerRecord(nodeKey: key($0), host: host, port: port, lastSeen: UInt64(now)) }
    }

    @Test func hostileAddressesAreNeverTaken() {
        for (host, port) in [
            ("0.0.0.0", 7420), ("0.1.2.3", 7420), ("224.0.0.1", 7420), ("239.255.255.250", 7420),
            ("255.255.255.255", 7420), ("240.0.0.1", 7420), ("::", 7420), ("ff02::1", 7420),
            ("::ffff:224.0.0.1", 7420), ("10.0.0.1", 0), ("0", 7420), ("1.2.3", 7420), ("a..b", 7420),
            ("-x.example", 7420), ("exa mple.org", 7420),
        ] {
            #expect(!PeerTable.isDialable(host: host, port: port), "\(host):\(port)")
        }
        for (host, port) in [
            ("127.0.0.1", 7420), ("10.0.0.5", 1), ("192.168.1.2", 65535), ("2001:db8::1", 7420), ("::1", 7420),
            ("node-1.example.org", 7420), ("localhost", 7420),
        ] {
            #expect(PeerTable.isDialable(host: host, port: port), "\(host):\(port)")
        }
        var table = PeerTable()
        let hostile = [
            PeerRecord(nodeKey: key(1), host: "224.0.0.1", port: 7420, lastSeen: UInt64(now)),
            PeerRecord(nodeKey: key(2), host: "10.0.0.1", port: 0, lastSeen: UInt64(now)),
        ]
        #expect(table.learn(hostile, from: "s", selfKey: me, now: now).hostile == 2)
        #expect(table.count == 0)
    }

    @Test func onePeerFillsAtMostItsQuota() {
        var limits = PeerTable.Limits()
        limits.maxPerSource = 64
        var table = PeerTable(limits: limits)
        let first = table.learn(records(0..<64), from: "attacker", selfKey: me, now: now)
        let second = table.learn(records(64..<128), from: "attacker", selfKey: me, now: now)
        #expect(first.added == 64)
        #expect(second.added == 0 && second.refused == 64)
        #expect(table.contributed(by: "attacker") == 64)
        // Another source still gets in.
        #expect(table.learn(records(200..<210), from: "honest", selfKey: me, now: now).added == 10)
    }

    @Test func aFullTableEvictsHearsayNeverVerifiedAddresses() {
        var limits = PeerTable.Limits()
        limits.maxEntries = 10
        limits.maxPerSource = 100
        var table = PeerTable(limits: limits)
        for i in 0..<4 {
            table.connected(
                key: Hex.encode(key(i)), address: PeerAddress(host: "10.0.0.\(i + 1)", port: 7420), dialled: true,
                now: now)
        }
        _ = table.learn(records(10..<16), from: "a", selfKey: me, now: now - 100)
        #expect(table.count == 10)
        let flood = table.learn(records(100..<200), from: "b", selfKey: me, now: now)
        #expect(flood.added == 100)
        #expect(table.count == 10)
        for i in 0..<4 { #expect(table[Hex.encode(key(i))]?.verified == true) }
        // With only verified entries left to evict, hearsay is refused.
        var full = PeerTable(limits: limits)
        for i in 0..<10 {
            full.connected(
                key: Hex.encode(key(i)), address: PeerAddress(host: "10.0.0.\(i + 1)", port: 7420), dialled: true,
                now: now)
        }
        #expect(full.learn(records(50..<51), from: "b", selfKey: me, now: now).refused == 1)
    }

    @Test func peersCannotRedirectAWorkingVerifiedAddress() {
        var table = PeerTable()
        let k = Hex.encode(key(1))
        table.connected(key: k, address: PeerAddress(host: "10.0.0.1", port: 7420), dialled: true, now: now - 60)
        let redirect = [PeerRecord(nodeKey: key(1), host: "10.9.9.9", port: 22, lastSeen: UInt64(now))]
        #expect(table.learn(redirect, from: "attacker", selfKey: me, now: now).refused == 1)
        #expect(table[k]?.host == "10.0.0.1")
        // After a failed dial, a newer address is taken (a node that moved), and it is unverified again.
        table[k]?.failures = 1
        #expect(table.learn(redirect, from: "friend", selfKey: me, now: now).updated == 1)
        #expect(table[k]?.host == "10.9.9.9" && table[k]?.verified == nil)
    }

    @Test func addressesAPeerNamedAreDialledWithinItsBudget() {
        var limits = PeerTable.Limits()
        limits.dialBurst = 8
        limits.dialRefillSeconds = 5
        var table = PeerTable(limits: limits)
        _ = table.learn(records(0..<64), from: "attacker", selfKey: me, now: now)
        let keys = (0..<64).map { Hex.encode(key($0)) }
        var dials = keys.filter { table.spendDial($0, now: now) }.count
        #expect(dials == 8)
        // Ten seconds later, two more.
        dials = keys.filter { table.spendDial($0, now: now + 10) }.count
        #expect(dials == 2)
        // Verified addresses and addresses no peer named are not limited.
        table.connected(key: keys[0], address: PeerAddress(host: "10.1.1.1", port: 7420), dialled: true, now: now)
        var unlimited = 0
        for _ in 0..<20 where table.spendDial(keys[0], now: now + 10) { unlimited += 1 }
        #expect(unlimited == 20)
        // Another source's budget is its own.
        _ = table.learn(records(100..<101), from: "honest", selfKey: me, now: now)
        let other = table.spendDial(Hex.encode(key(100)), now: now + 10)
        #expect(other)
    }
}
