# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_walctl_global_optspecs
    string join \n dir= h/help V/version
end

function __fish_walctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_walctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_walctl_using_subcommand
    set -l cmd (__fish_walctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c walctl -n "__fish_walctl_needs_command" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_needs_command" -s V -l version -d 'Print version'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "append" -d 'Append records (arguments, stdin, lines, NUL-separated, or JSON Lines)'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "sync" -d 'Make every record appended so far durable (segments and directory)'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "verify" -d 'Check every segment and record (exit 0 clean, 1 torn tail, 3 corrupt)'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "dump" -d 'Print records as a table or as JSON Lines'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "repair" -d 'Cut a torn tail left by a crash, and nothing else'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "compact" -d 'Drop records before a checkpoint, or superseded by a later write of their key'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "salvage" -d 'Copy every valid record of a damaged log, sequence numbers kept, into a new log in DIR'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "export-jsonl" -d 'Export records as JSON Lines, with a header and a count-and-digest trailer'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "verify-export" -d 'Check an export\'s record count and SHA-256 digest against its trailer'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "stat" -d 'Summarise the log: segments, records, bytes, ranges and durability'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "get" -d 'Print the live value of KEY (last write wins; tombstones delete)'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "generate" -d 'Generate the man page or shell completions on stdout (for packagers)'
complete -c walctl -n "__fish_walctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c walctl -n "__fish_walctl_using_subcommand append" -l key -d 'Give every appended record the key K' -r
complete -c walctl -n "__fish_walctl_using_subcommand append" -l delete -d 'Append a tombstone that deletes key K' -r
complete -c walctl -n "__fish_walctl_using_subcommand append" -l expect-next-seq -d 'Append nothing unless the next sequence number is N, and exit 6 if it is not (safe retries)' -r
complete -c walctl -n "__fish_walctl_using_subcommand append" -l segment-size -d 'Start a new segment once the current one would exceed BYTES (default 64 MiB; 16 KiB to 1 GiB; a suffix K, M or G counts in binary units, as in 64M). Applies to this invocation\'s writes' -r
complete -c walctl -n "__fish_walctl_using_subcommand append" -l wait -d 'Wait up to SECONDS for another writer to release the log (exit 4 after that)' -r
complete -c walctl -n "__fish_walctl_using_subcommand append" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand append" -l lines -d 'Read stdin as one record per line (the newline is not part of the record)'
complete -c walctl -n "__fish_walctl_using_subcommand append" -l null -d 'Read stdin as NUL-terminated records (as written by `find -print0`)'
complete -c walctl -n "__fish_walctl_using_subcommand append" -l jsonl -d 'Read stdin as JSON Lines: {"key": .., "key_encoding": .., "payload": .., "payload_encoding": .., "type": "data"|"tombstone", "timestamp_nanos": ..}; all fields but payload optional'
complete -c walctl -n "__fish_walctl_using_subcommand append" -l sync -d 'Make the records durable (one fsync) before exiting'
complete -c walctl -n "__fish_walctl_using_subcommand append" -l json -d 'Print one JSON object per record: seq, segment, offset, length'
complete -c walctl -n "__fish_walctl_using_subcommand append" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand sync" -l wait -d 'Wait up to SECONDS for another writer to release the log (exit 4 after that)' -r
complete -c walctl -n "__fish_walctl_using_subcommand sync" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand sync" -l json -d 'Print {"dir", "durable_seq"} on stdout'
complete -c walctl -n "__fish_walctl_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand verify" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand verify" -l json -d 'Print one JSON object: status, records, first_seq, last_seq, bytes, durable_seq, damage...'
complete -c walctl -n "__fish_walctl_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l from -d 'Only records with sequence number >= SEQ (the segments wholly below SEQ are not read, so damage in them is not looked for)' -r
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l to -d 'Only records with sequence number <= SEQ (reading stops there, so damage after it is not looked for: `walctl verify` checks the whole log)' -r
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l key -d 'Only records whose key is exactly K (UTF-8)' -r
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l since -d 'Only records appended at or after TIME (RFC 3339, e.g. 2026-01-31T09:00:00Z)' -r
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l until -d 'Only records appended at or before TIME (RFC 3339)' -r
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l limit -d 'Stop after N matching records (damage after them is not looked for)' -r
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l tail -d 'Only the last N matching records (read back from the newest segment only as far as N need, so damage in older segments is not looked for)' -r
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l payload -d 'How to show payloads' -r -f -a "text\t'Text, with control characters and invalid UTF-8 escaped (in JSON: UTF-8, or base64 when the payload is not UTF-8)'
hex\t'Lower-case hexadecimal'
base64\t'Standard base64 with padding'"
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l follow -d 'Keep running and print records as they are appended (a record being written is waited for, not reported as damage; damage met while following ends the command, exit 3)'
complete -c walctl -n "__fish_walctl_using_subcommand dump" -l json -d 'Print JSON Lines instead of a table'
complete -c walctl -n "__fish_walctl_using_subcommand dump" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand repair" -l wait -d 'Wait up to SECONDS for another writer to release the log (exit 4 after that)' -r
complete -c walctl -n "__fish_walctl_using_subcommand repair" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand repair" -l truncate-partial -d 'Cut a torn tail (the only repair walctl performs; required)'
complete -c walctl -n "__fish_walctl_using_subcommand repair" -l dry-run -d 'Print the plan (segment, offset, bytes, records lost, last surviving seq); change nothing'
complete -c walctl -n "__fish_walctl_using_subcommand repair" -s y -l yes -d 'Do not ask for confirmation'
complete -c walctl -n "__fish_walctl_using_subcommand repair" -l json -d 'Print the plan or the result as one JSON object'
complete -c walctl -n "__fish_walctl_using_subcommand repair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand compact" -l before -d 'Drop every record with a sequence number below SEQ (at most the log\'s next sequence number: a checkpoint no record has reached is refused, exit 2)' -r
complete -c walctl -n "__fish_walctl_using_subcommand compact" -l wait -d 'Wait up to SECONDS for another writer to release the log (exit 4 after that)' -r
complete -c walctl -n "__fish_walctl_using_subcommand compact" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand compact" -l keys -d 'Keep only the latest record of each key; drop keys whose latest record is a tombstone'
complete -c walctl -n "__fish_walctl_using_subcommand compact" -l dry-run -d 'Print the report without writing anything'
complete -c walctl -n "__fish_walctl_using_subcommand compact" -l rewrite -d 'Rewrite every surviving record into new segments, even when the drops fall in whole segments at the head and at most one other (which compacts in place, leaving the rest of the log as it is): needs as much free space as the survivors'
complete -c walctl -n "__fish_walctl_using_subcommand compact" -l json -d 'Print the report as one JSON object'
complete -c walctl -n "__fish_walctl_using_subcommand compact" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand salvage" -l to -d 'The directory for the new log (it must not exist)' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand salvage" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand salvage" -l dry-run -d 'Print what would be salvaged and lost; write nothing'
complete -c walctl -n "__fish_walctl_using_subcommand salvage" -l json -d 'Print the report as one JSON object'
complete -c walctl -n "__fish_walctl_using_subcommand salvage" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l from -d 'Only records with sequence number >= SEQ (the segments wholly below SEQ are not read, so damage in them is not looked for)' -r
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l to -d 'Only records with sequence number <= SEQ (reading stops there, so damage after it is not looked for: `walctl verify` checks the whole log)' -r
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l key -d 'Only records whose key is exactly K (UTF-8)' -r
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l since -d 'Only records appended at or after TIME (RFC 3339, e.g. 2026-01-31T09:00:00Z)' -r
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l until -d 'Only records appended at or before TIME (RFC 3339)' -r
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l limit -d 'Stop after N matching records (damage after them is not looked for)' -r
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l tail -d 'Only the last N matching records (read back from the newest segment only as far as N need, so damage in older segments is not looked for)' -r
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -s o -l output -d 'Write to FILE (created with mode 0600; refused if it exists) instead of stdout; `-` is stdout' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -l force -d 'Replace FILE if it exists (atomically, through a temporary file)'
complete -c walctl -n "__fish_walctl_using_subcommand export-jsonl" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand verify-export" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand verify-export" -l json -d 'Print one JSON object: status, records, expected_records, sha256, expected_sha256, problems, and `log` with --against-log'
complete -c walctl -n "__fish_walctl_using_subcommand verify-export" -l against-log -d 'Also hold every record line against the log at --dir: the record of the same sequence number must have the same type, key, payload and timestamp, and (unless the export selected by key or time) no record of the log in the export\'s range may be missing. A digest proves the file unchanged since it was written; this proves it true to the log'
complete -c walctl -n "__fish_walctl_using_subcommand verify-export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand stat" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand stat" -l json -d 'Print one JSON object'
complete -c walctl -n "__fish_walctl_using_subcommand stat" -l segments -d 'Also list every segment: records, sequence range, valid and file bytes, what its watermark proves durable, damage found in it, and whether it is sealed (the JSON output always has this, as `segments`)'
complete -c walctl -n "__fish_walctl_using_subcommand stat" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand get" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand get" -l json -d 'Print one JSON object: key, seq, timestamp, payload and its encoding, segment, offset'
complete -c walctl -n "__fish_walctl_using_subcommand get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s h -l help -d 'Print help'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "man" -d 'The man page walctl.1, or with SUBCOMMAND the page walctl-SUBCOMMAND.1'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "completions" -d 'The completion script for SHELL'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and __fish_seen_subcommand_from man" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and __fish_seen_subcommand_from completions" -l dir -d 'The log directory [default: $WALCTL_DIR, else ./wal]' -r -F
complete -c walctl -n "__fish_walctl_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "man" -d 'The man page walctl.1, or with SUBCOMMAND the page walctl-SUBCOMMAND.1'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'The completion script for SHELL'
complete -c walctl -n "__fish_walctl_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "append" -d 'Append records (arguments, stdin, lines, NUL-separated, or JSON Lines)'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "sync" -d 'Make every record appended so far durable (segments and directory)'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "verify" -d 'Check every segment and record (exit 0 clean, 1 torn tail, 3 corrupt)'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "dump" -d 'Print records as a table or as JSON Lines'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "repair" -d 'Cut a torn tail left by a crash, and nothing else'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "compact" -d 'Drop records before a checkpoint, or superseded by a later write of their key'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "salvage" -d 'Copy every valid record of a damaged log, sequence numbers kept, into a new log in DIR'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "export-jsonl" -d 'Export records as JSON Lines, with a header and a count-and-digest trailer'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "verify-export" -d 'Check an export\'s record count and SHA-256 digest against its trailer'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "stat" -d 'Summarise the log: segments, records, bytes, ranges and durability'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "get" -d 'Print the live value of KEY (last write wins; tombstones delete)'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "generate" -d 'Generate the man page or shell completions on stdout (for packagers)'
complete -c walctl -n "__fish_walctl_using_subcommand help; and not __fish_seen_subcommand_from append sync verify dump repair compact salvage export-jsonl verify-export stat get generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c walctl -n "__fish_walctl_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "man" -d 'The man page walctl.1, or with SUBCOMMAND the page walctl-SUBCOMMAND.1'
complete -c walctl -n "__fish_walctl_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'The completion script for SHELL'
