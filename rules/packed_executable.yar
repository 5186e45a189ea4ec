// Executables whose body is nearly random. Compilers leave code, tables and strings that
// stay well below 7 bits per byte; a whole file at 7.8 or more is compressed or encrypted,
// which packers do to hide malware from signatures. Installers and self-extracting archives
// do it too, so this is suspicious, not proof.

import "math"

rule packed_executable_high_entropy
{
    meta:
        description = "packed or encrypted executable: entropy of 7.8 bits per byte or more"
        severity = "suspicious"
        malware_type = "packed"

    condition:
        filesize > 64KB and
        (uint32(0) == 0x464c457f or // ELF
         (uint16(0) == 0x5a4d and uint32(uint32(0x3c)) == 0x00004550)) and // MZ with a PE header
        math.entropy(0, filesize) >= 7.8
}
