// The EICAR anti-malware test file: a harmless 68-byte text that every scanner is expected to
// detect, used to check that detection and alerting work end to end.

rule eicar_test_file
{
    meta:
        description = "EICAR anti-malware test file"
        severity = "malicious"
        malware_family = "EICAR-Test-File"
        malware_type = "test-file"

    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

    condition:
        // The standard allows trailing whitespace up to a total of 128 bytes.
        $eicar at 0 and filesize <= 128
}
