extension AuditReport {
    /// What `exitCode` means, in a few words (the status page shows it for every lineage hop; `audit --help` lists the
    /// same codes).
    public var verdict: String {
        switch exitCode {
        case 0: "every check holds"
        case 9: "the checks hold, but the publisher withdrew it (yanked, or a high or critical advisory)"
        case 4: "bad signature"
        case 10: "published after its publisher's key was reported compromised"
        case 6: "an overwrite attempt was seen"
        case 5: "content missing or corrupt"
        case 7: "broken lineage further up"
        default: "a log or checkpoint check failed"
        }
    }
}
