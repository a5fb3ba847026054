<#
.SYNOPSIS
Build the CLIP Studio Windows installer: a venv with a CUDA build of torch -> PyInstaller -> the frozen
app's self-test -> Inno Setup.

.DESCRIPTION
Run from anywhere (PowerShell 7, `pwsh`); works in the repository the script lives in:

    pwsh installer\build.ps1                                   # CUDA 12.8 build of torch (the default)
    pwsh installer\build.ps1 -TorchIndexUrl https://download.pytorch.org/whl/cu126
    pwsh installer\build.ps1 -Python "C:\Python311\python.exe"

Steps: create build\venv; install torch==2.13.0 from the PyTorch CUDA wheel index FIRST; install CLIP
Studio with installer\constraints.txt (so nothing can swap that torch for another build); install the
pinned PyInstaller; build dist\ClipStudio\; run `dist\ClipStudio\ClipStudio.exe --selftest` (report in
build\selftest.json); compile installer\clipstudio.iss with ISCC into dist\installer\. Stops at the
first failing step.

.PARAMETER TorchIndexUrl
The PyTorch wheel index to take torch from: .../whl/cu128 (default), .../whl/cu126, ... Pick the CUDA
variant that PyTorch's install selector lists for torch 2.13.0. .../whl/cpu builds a CPU-only app.

.PARAMETER Python
The Python 3.10+ (64-bit) that creates the build venv. Default: `python` on PATH.

.PARAMETER SkipSelftest
Don't run the frozen self-test (not recommended: it is what proves the bundle works offline).

.PARAMETER SkipInstaller
Stop after PyInstaller and the self-test; don't run Inno Setup.
#>
[CmdletBinding()]
param(
    [string]$TorchIndexUrl = "https://download.pytorch.org/whl/cu128",
    [string]$Python = "python",
    [switch]$SkipSelftest,
    [switch]$SkipInstaller
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest
$TorchVersion = "2.13.0"  # keep in step with installer\constraints.txt
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

function Invoke-Step {
    # Run a native command (a script block) and stop the build if it exits non-zero.
    param([Parameter(Mandatory)][string]$What, [Parameter(Mandatory)][scriptblock]$Command)
    Write-Host "== $What"
    & $Command
    if ($LASTEXITCODE -ne 0) {
        throw "$What failed (exit code $LASTEXITCODE)."
    }
}

function Get-FolderBytes([string]$Path) {
    $sum = (Get-ChildItem -LiteralPath $Path -Recurse -File -Force | Measure-Object -Property Length -Sum).Sum
    if ($null -eq $sum) { return [int64]0 }
    return [int64]$sum
}

function Find-Iscc {
    $found = Get-Command ISCC.exe -ErrorAction SilentlyContinue
    if ($found) { return $found.Source }
    $candidates = @(
        (Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"),
        (Join-Path $env:ProgramFiles "Inno Setup 6\ISCC.exe"),
        (Join-Path $env:LOCALAPPDATA "Programs\Inno Setup 6\ISCC.exe")
    )
    foreach ($candidate in $candidates) {
        if (Test-Path -LiteralPath $candidate) { return $candidate }
    }
    return $null
}

$total = [Diagnostics.Stopwatch]::StartNew()

# --- the build environment ---------------------------------------------------------------------------
$Venv = Join-Path $Root "build\venv"
$Py = Join-Path $Venv "Scripts\python.exe"
if (-not (Test-Path -LiteralPath $Py)) {
    Invoke-Step "create the build venv with $Python" { & $Python -m venv $Venv }
}
Invoke-Step "check the Python version" {
    & $Py -c "import struct, sys; assert sys.version_info[:2] >= (3, 10) and struct.calcsize('P') == 8, sys.version; print(sys.version)"
}
Invoke-Step "upgrade pip" { & $Py -m pip install --disable-pip-version-check --upgrade pip }

# torch first, from the CUDA index; every later install is constrained to this exact version.
Invoke-Step "torch==$TorchVersion from $TorchIndexUrl" {
    & $Py -m pip install --disable-pip-version-check --no-cache-dir "torch==$TorchVersion" --index-url $TorchIndexUrl
}
$expectCuda = if ($TorchIndexUrl.TrimEnd("/").EndsWith("/cpu")) { "0" } else { "1" }
Invoke-Step "check the torch build" {
    & $Py -c "import sys, torch; print('torch', torch.__version__, 'CUDA build', torch.version.cuda, 'GPU visible', torch.cuda.is_available()); sys.exit(0 if torch.version.cuda or sys.argv[1] == '0' else 'this torch is not a CUDA build: check -TorchIndexUrl')" $expectCuda
}
Invoke-Step "CLIP Studio and its dependencies (constrained to torch==$TorchVersion)" {
    & $Py -m pip install --disable-pip-version-check -c installer\constraints.txt -e .
}
Invoke-Step "build tools (installer\requirements-build.txt)" {
    & $Py -m pip install --disable-pip-version-check -c installer\constraints.txt -r installer\requirements-build.txt
}
$Version = & $Py -c "import clipstudio; print(clipstudio.__version__)"
if ($LASTEXITCODE -ne 0 -or -not $Version) { throw "Could not read clipstudio.__version__." }
$Version = "$Version".Trim()
Write-Host "== CLIP Studio $Version"

# --- PyInstaller -------------------------------------------------------------------------------------
$Bundle = Join-Path $Root "dist\ClipStudio"
$Exe = Join-Path $Bundle "ClipStudio.exe"
$pyinstaller = [Diagnostics.Stopwatch]::StartNew()
Invoke-Step "PyInstaller: installer\clipstudio.spec -> dist\ClipStudio\" {
    & $Py -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build\pyinstaller installer\clipstudio.spec
}
$pyinstaller.Stop()
if (-not (Test-Path -LiteralPath $Exe)) { throw "PyInstaller did not produce $Exe." }
$bundleBytes = Get-FolderBytes $Bundle
Write-Host ("== bundle: {0:N2} GB, built in {1:N0} s" -f ($bundleBytes / 1GB), $pyinstaller.Elapsed.TotalSeconds)
Write-Host "-- largest items under dist\ClipStudio\_internal (MB)"
Get-ChildItem -LiteralPath (Join-Path $Bundle "_internal") -Force |
    ForEach-Object {
        $bytes = if ($_.PSIsContainer) { Get-FolderBytes $_.FullName } else { $_.Length }
        [pscustomobject]@{ MB = [math]::Round($bytes / 1MB, 1); Item = $_.Name }
    } |
    Sort-Object MB -Descending | Select-Object -First 10 | Format-Table -AutoSize | Out-String | Write-Host

# --- the frozen self-test ------------------------------------------------------------------------------
# ClipStudio.exe is a windowed (GUI-subsystem) program: PowerShell would not wait for it if called
# directly, and it prints nowhere. Start-Process -Wait gives its exit code; the report says the rest.
if (-not $SkipSelftest) {
    $Report = Join-Path $Root "build\selftest.json"
    Remove-Item -LiteralPath $Report -ErrorAction SilentlyContinue
    $firstLaunch = Join-Path ([IO.Path]::GetTempPath()) ("clipstudio-selftest-" + [guid]::NewGuid())
    $env:CLIPSTUDIO_HOME = $firstLaunch  # empty user data: what a first launch sees
    $env:QT_QPA_PLATFORM = "offscreen"
    try {
        Write-Host "== frozen self-test: ClipStudio.exe --selftest (offscreen; its socket guard fails it on any network use)"
        $proc = Start-Process -FilePath $Exe -ArgumentList @("--selftest", "--report", "`"$Report`"") `
            -WorkingDirectory $Root -NoNewWindow -Wait -PassThru
        $code = $proc.ExitCode
    }
    finally {
        Remove-Item Env:CLIPSTUDIO_HOME, Env:QT_QPA_PLATFORM -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath $firstLaunch -Recurse -Force -ErrorAction SilentlyContinue
    }
    if (Test-Path -LiteralPath $Report) {
        (Get-Content -LiteralPath $Report -Raw | ConvertFrom-Json).summary | ForEach-Object { Write-Host $_ }
    }
    else {
        Write-Host "No self-test report was written to $Report."
    }
    if ($code -ne 0) { throw "The frozen self-test failed (exit code $code); see $Report." }
}

# --- Inno Setup ----------------------------------------------------------------------------------------
if (-not $SkipInstaller) {
    $iscc = Find-Iscc
    if (-not $iscc -and (Get-Command choco -ErrorAction SilentlyContinue)) {
        Invoke-Step "install Inno Setup (choco install innosetup)" { choco install innosetup -y --no-progress }
        $iscc = Find-Iscc
    }
    if (-not $iscc) {
        throw "Inno Setup 6 (ISCC.exe) was not found. Install it from https://jrsoftware.org/isdl.php or with 'choco install innosetup', then run this script again."
    }
    # Inno Setup needs slices (setup-*.bin beside the .exe) past 2.1 GB of compressed data; a bundle
    # under 2 GB uncompressed always fits in one setup .exe.
    $diskSpanning = if ($bundleBytes -lt 2000000000) { "no" } else { "yes" }
    $installerDir = Join-Path $Root "dist\installer"
    if (Test-Path -LiteralPath $installerDir) { Remove-Item -LiteralPath $installerDir -Recurse -Force }
    Invoke-Step "Inno Setup: installer\clipstudio.iss (version $Version, disk spanning $diskSpanning)" {
        & $iscc /Q "/DAppVersion=$Version" "/DDiskSpanning=$diskSpanning" "/DDistDir=$Bundle" "/DOutputDir=$installerDir" installer\clipstudio.iss
    }
    Write-Host "== installer files (ship them together):"
    Get-ChildItem -LiteralPath $installerDir | ForEach-Object { Write-Host ("  {0}  {1:N0} MB" -f $_.Name, ($_.Length / 1MB)) }
}

Write-Host ("== done in {0:N1} min" -f $total.Elapsed.TotalMinutes)
