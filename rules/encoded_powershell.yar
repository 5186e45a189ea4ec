// PowerShell started with a base64-encoded command (-EncodedCommand or any prefix of it, such
// as -enc or -e). Administrators use it to avoid quoting problems, but it is also the most
// common way malware hides a PowerShell payload, so a plain match is suspicious. A payload
// that downloads or decodes more code is malicious: "wide base64" strings find its words
// inside the base64 of the UTF-16LE command, which is what -EncodedCommand takes.

rule powershell_encoded_command
{
    meta:
        description = "runs PowerShell with a base64-encoded command"
        severity = "suspicious"
        malware_type = "dropper"

    strings:
        $encoded = /powershell(\.exe)?["']?\s+([-\/][a-z]+\s+([a-z]+\s+)?){0,6}[-\/](e|ec|en|enc|enco|encod|encode|encoded|encodedc|encodedco|encodedcom|encodedcomm|encodedcomma|encodedcomman|encodedcommand)\s+["']?[a-z0-9+\/]{20,}={0,2}/ nocase

    condition:
        $encoded
}

rule powershell_encoded_downloader
{
    meta:
        description = "runs an encoded PowerShell command that downloads or decodes more code"
        severity = "malicious"
        malware_type = "dropper"

    strings:
        $payload_webclient = "Net.WebClient" wide base64
        $payload_download_string = "DownloadString" wide base64
        $payload_download_file = "DownloadFile" wide base64
        $payload_invoke_expression = "Invoke-Expression" wide base64
        $payload_from_base64 = "FromBase64String" wide base64
        $payload_start_process = "Start-Process" wide base64

    condition:
        powershell_encoded_command and any of ($payload_*)
}
