import AlexandriaCatalog
import AlexandriaHome
import ArgumentParser

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a release's provenance: signature, content, log, notices, overwrite attempts, lineage.",
        discussion: """
            Exit codes: 0 everything holds; 1 a log or checkpoint check failed; 4 a bad signature; 5 content missing \
            or corrupt; 6 an overwrite attempt (equivocation) was seen; 7 broken lineage; 8 fewer witnesses than \
            --min-witnesses (with a [trust] policy, only trusted witnesses count); 9 every check holds but the \
            publisher withdrew the release (yanked, or an advisory of high or critical severity); 10 the release was \
            published at or after the size at which its publisher's compromise notice froze the log. A release \
            whose publisher signed conflicting manifests that nothing settles on this node is refused with 6 and its \
            contenders listed. REF is a manifest id, publisher/name@version (or @latest), or a file's sha256 address.
            """)

    @OptionGroup var options: HomeOptions
    @Argument var ref: String
    @Flag(help: "Check metadata only; do not re-read and hash the content.") var offline = false
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(
        help: ArgumentHelp(
            "Fail (exit 8) unless at least K nodes witnessed the release (cosigned its checkpoint); with a [trust] "
                + "policy, K trusted ones."))
    var minWitnesses: Int = 0

    func run() throws {
        let home = options.resolved
        let registry = try openRegistry(home)
        let resolved = try resolve(ref, home: home, registry: registry)
        let total = resolved.manifest.manifest.files.reduce(UInt64(0)) { $0 + $1.size }
        let bar = ProgressBar(label: "audit", total: offline ? 0 : total)
        let report = try registry.audit(resolved, offline: offline) { bar.update($0) }
        bar.finish()
        if json {
            try Output.json(report)
        } else {
            for line in AuditTree.render(report, indent: "") { Output.line(line) }
        }
        var code = report.exitCode
        // With a [trust] policy only trusted witnesses count: anyone can make a key and cosign.
        let counted = report.quorum > 0 ? report.trustedWitnesses : report.witnesses
        if minWitnesses > 0 && !json {
            Output.line(
                "counted    \(counted.count) \(report.quorum > 0 ? "trusted " : "")witness(es) for --min-witnesses "
                    + "\(minWitnesses)"
                    + (report.quorum > 0
                        ? ": " + (counted.isEmpty ? "none" : counted.joined(separator: ", "))
                            + "; not counted (untrusted): \(report.untrustedWitnesses.count)"
                        : " (no [trust] policy: every witness counts)"))
        }
        if (code == 0 || code == 9) && counted.count < minWitnesses {
            code = 8
            if !json {
                Output.line("witnesses: \(counted.count), fewer than --min-witnesses \(minWitnesses)")
            }
        }
        if !json {
            switch code {
            case 0: Output.line("result: everything holds")
            case 9:
                Output.line(
                    "result: the checks hold, but the publisher WITHDREW this release "
                        + "(\(report.yanked != nil ? "yanked" : "a high-severity advisory")); do not use it (exit 9)")
            default: Output.line("result: FAILED (exit \(code))")
            }
        }
        if code != 0 { throw ExitCode(code) }
    }
}

enum AuditTree {
    static func mark(_ ok: Bool) -> String { ok ? "ok  " : "FAIL" }

    static func render(_ r: AuditReport, indent: String) -> [String] {
        var out: [String] = []
        out.append("\(indent)manifest \(r.manifestID)")
        let p = indent + "  "
        for note in r.resolution { out.append("\(p)note       \(note)") }
        out.append("\(p)release    \(r.release)")
        out.append("\(p)\(mark(r.signatureValid)) signature  ECDSA P-256 by publisher key \(r.signedBy)")
        out.append("\(p)files (\(r.files.count))")
        for f in r.files {
            let ok = f.present && f.metadataMatches && f.contentVerified != false
            let content =
                f.contentVerified.map { $0 ? "content verified" : "content FAILED" }
                ?? (f.present ? "metadata only" : "not held here")
            let tag = !f.present && !f.contentRequired ? "--  " : mark(ok)
            out.append("\(p)  \(tag) \(f.path)  \(f.sha256)  \(f.size) B  \(content)")
            if let problem = f.problem { out.append("\(p)       \(problem)") }
        }
        let logOK = r.log.included && r.log.inclusionProofVerified && r.log.checkpointsConsistent
        out.append(
            "\(p)\(mark(logOK)) log        entry \(r.log.logIndex) of \(r.log.logSize); checkpoints \(r.log.checkpoints); "
                + "inclusion \(r.log.inclusionProofVerified ? "proven" : "NOT proven"), "
                + "\(r.log.checkpointsConsistent ? "consistent" : "INCONSISTENT")")
        for problem in r.log.problems { out.append("\(p)       \(problem)") }
        if let y = r.yanked {
            out.append("\(p)YANKED     at entry \(y.index) (\(y.time)): \(y.reason ?? "")")
        } else {
            out.append("\(p)ok   status     not yanked")
        }
        for n in r.notices where n.kind != "yank" {
            var line = "\(p)notice     \(n.kind) at entry \(n.index) (\(n.time))"
            if let s = n.severity { line += " severity \(s)" }
            if let reason = n.reason { line += ": \(reason)" }
            if let s = n.sunset { line += "; sunset \(s)" }
            if let s = n.successor { line += "; successor \(s)" }
            out.append(line)
        }
        if let frozen = r.frozenAt {
            out.append(
                "\(p)\(mark(!r.afterCompromise)) compromise key reported compromised; log frozen at size \(frozen): "
                    + (r.afterCompromise
                        ? "this release (entry \(r.log.logIndex)) is AFTER the freeze and may be a thief's"
                        : "this release (entry \(r.log.logIndex)) is before the freeze and stands"))
        }
        for fork in r.compromiseForks { out.append("\(p)FAIL fork       \(fork)") }
        if r.overwriteAttempts.isEmpty {
            out.append("\(p)ok   overwrite attempts  none seen")
        } else {
            for o in r.overwriteAttempts {
                out.append("\(p)FAIL OVERWRITE ATTEMPT  \(o.subject)")
                out.append("\(p)       seen first here: \(o.first)")
                out.append("\(p)       then:            \(o.second)")
            }
        }
        if r.lineage.isEmpty { out.append("\(p)lineage    a root (no parents)") }
        for parent in r.lineage {
            out.append("\(p)\(mark(parent.report?.exitCode == 0)) lineage    \(parent.relation) of \(parent.manifest)")
            if let problem = parent.problem { out.append("\(p)       \(problem)") }
            if let sub = parent.report { out += render(sub, indent: p + "    ") }
        }
        if let settlement = r.settlement {
            let why: String
            switch ForkChoice.Reason(rawValue: settlement) {
            case .quorum?: why = "a quorum of \(r.quorum) trusted witnesses cosigned this manifest and no other"
            case .held?: why = "the binding this node saw first (no quorum of trusted witnesses settles it)"
            case .heldDespiteConflictingQuorums?:
                why = "the binding this node saw first: trusted witnesses signed both sides"
            default: why = settlement
            }
            out.append("\(p)settled    \(why)")
        }
        for c in r.contenders { out.append("\(p)  contender \(c)") }
        if !r.doubleSigners.isEmpty {
            out.append("\(p)FAIL trusted witnesses that signed both sides: \(r.doubleSigners.joined(separator: ", "))")
        }
        let trust = r.quorum > 0 ? ", \(r.trustedWitnesses.count) trusted (quorum \(r.quorum))" : ", no [trust] policy"
        out.append("\(p)witnesses  \(r.witnesses.isEmpty ? "none yet" : "\(r.witnesses.count)\(trust)")")
        for w in r.witnesses { out.append("\(p)  \(w)") }
        out.append("\(p)holders    \(r.holders.isEmpty ? "none known" : r.holders.joined(separator: ", "))")
        return out
    }
}
