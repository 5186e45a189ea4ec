// Scripts that download code and run it at once without saving it first: the usual first
// stage of Linux botnets and coin miners and of PowerShell droppers. Install scripts use the
// same pattern, so a plain match is only suspicious; two more signs of hiding, persistence or
// disabled defences make it malicious.

rule download_pipe_to_shell
{
    meta:
        description = "downloads a script and pipes it straight into a shell"
        severity = "suspicious"
        malware_type = "dropper"

    strings:
        $get_sh = /\b(curl|wget)\s[^|\r\n]{0,300}\|\s*(sudo\s+)?(ba|z|da|k)?sh\b/
        $get_ps_webclient = /\b(iex|Invoke-Expression)\s*\(\s*\(?\s*New-Object\s+(System\.)?Net\.WebClient\s*\)?\s*\.\s*Download(String|Data)\b/ nocase
        $get_ps_pipe = /\b(Invoke-WebRequest|Invoke-RestMethod|iwr|irm)\s[^|\r\n]{0,300}\|\s*(iex|Invoke-Expression)\b/ nocase

    condition:
        any of them
}

rule download_pipe_to_shell_hidden
{
    meta:
        description = "downloads and runs a script that hides, persists or disables defences"
        severity = "malicious"
        malware_type = "dropper"

    strings:
        $sign_clear_history = /\bhistory\s+-c\b/
        $sign_remove_logs = /\brm\s+-[a-zA-Z]+\s+\/var\/log\b/
        $sign_detach = /\bnohup\s[^\r\n]{1,200}>\s*\/dev\/null/
        $sign_cron = /\bcrontab\s+-l\b|\/etc\/cron(tab\b|\.d\/)/
        $sign_login_script = /\/etc\/rc\.local\b|>>\s*\S*\.bashrc\b/
        $sign_stage_tmp = /\bchmod\s+(\+x|[0-7]?[0-7]{3})\s+\/(tmp|dev\/shm|var\/tmp)\//
        $sign_disable_defence = /\b(setenforce\s+0|ufw\s+disable|systemctl\s+(stop|disable)\s+(apparmor|firewalld|auditd))\b/
        $sign_miner = /\bstratum\+(tcp|ssl):\/\/|\bxmrig\b/ nocase
        $sign_ps_hidden = /\s-w(indowstyle)?\s+hidden\b/ nocase
        $sign_ps_defender = /\bSet-MpPreference\s+-Disable(RealtimeMonitoring|BehaviorMonitoring)\b/ nocase
        $sign_ps_run_key = /CurrentVersion\\+Run\b/ nocase

    condition:
        download_pipe_to_shell and 2 of ($sign_*)
}
