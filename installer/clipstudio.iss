; Inno Setup 6 script (6.3 or later: x64compatible): the CLIP Studio installer, from PyInstaller's dist\ClipStudio\ folder.
;
;   ISCC /DAppVersion=0.1.0 installer\clipstudio.iss          (installer\build.ps1 does this)
;
; Optional defines: /DDistDir=<folder> (default ..\dist\ClipStudio), /DOutputDir=<folder> (default
; ..\dist\installer), /DDiskSpanning=no (one setup .exe; build.ps1 passes it when the bundle is small
; enough: Inno Setup needs slices - setup .bin files next to the .exe - past 2.1 GB compressed, which a
; CUDA build of torch exceeds).
;
; Per-user by default (no admin rights: %LOCALAPPDATA%\Programs\ClipStudio); the first page offers an
; all-users install instead. Upgrades replace _internal\ wholesale, so no stale file of an older
; version survives. Uninstalling asks before it deletes the user's runs, caches and logs.

#ifndef AppVersion
  #error Pass the version: ISCC /DAppVersion=X.Y.Z installer\clipstudio.iss (installer\build.ps1 reads it from clipstudio.__version__)
#endif
#ifndef DistDir
  #define DistDir "..\dist\ClipStudio"
#endif
#ifndef OutputDir
  #define OutputDir "..\dist\installer"
#endif
#ifndef DiskSpanning
  #define DiskSpanning "yes"
#endif
#define AppName "CLIP Studio"
#define AppExe "ClipStudio.exe"
; Written by installer\clipstudio.spec from resources\icons\app.svg.
#define IconFile AddBackslash(SourcePath) + "..\build\icon\clipstudio.ico"

[Setup]
; Never change AppId: Windows finds the installed copy to upgrade or uninstall by it.
AppId={{EA6B95A7-3F46-4305-A657-3CD2DC3B11D4}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=CLIP Studio
AppComments=Adapt CLIP-style image-text models to your own medical images. Research software, not a medical device.
DefaultDirName={autopf}\ClipStudio
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=ClipStudio-{#AppVersion}-setup
Compression=lzma2/normal
SolidCompression=yes
LZMAUseSeparateProcess=yes
LZMANumBlockThreads=4
DiskSpanning={#DiskSpanning}
#if DiskSpanning == "yes"
DiskSliceSize=max
#endif
WizardStyle=modern
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
CloseApplications=yes
RestartApplications=no
#if FileExists(IconFile)
SetupIconFile={#IconFile}
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An upgrade must not mix an old version's libraries with the new ones: clear the bundle first.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#DistDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Anything the app may have left beside itself (the bundle is replaced, never edited, but be thorough).
Type: filesandordirs; Name: "{app}\_internal"
Type: dirifempty; Name: "{app}"

[Code]
// The user's own work - training runs, embedding and image caches, logs, the self-test report - lives in
// %LOCALAPPDATA%\ClipStudio (clipstudio.engine.storage.paths.user_data_dir), the window's settings in
// %APPDATA%\CLIP Studio. Keep both unless the user says otherwise; a silent uninstall keeps them.
function UserDataDir: String;
begin
  Result := ExpandConstant('{localappdata}\ClipStudio');
end;

function SettingsDir: String;
begin
  Result := ExpandConstant('{userappdata}\CLIP Studio');
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep <> usPostUninstall then
    Exit;
  if UninstallSilent or not (DirExists(UserDataDir) or DirExists(SettingsDir)) then
    Exit;
  if MsgBox('Also delete your CLIP Studio data?' + #13#10 + #13#10 +
            'This removes your training runs, caches and logs in' + #13#10 +
            '  ' + UserDataDir + #13#10 +
            'and the window settings in' + #13#10 +
            '  ' + SettingsDir + #13#10 + #13#10 +
            'Choose No to keep them (for example, to reinstall later).',
            mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
  begin
    if DirExists(UserDataDir) and not DelTree(UserDataDir, True, True, True) then
      MsgBox('Some files in ' + UserDataDir + ' could not be deleted; remove them by hand.', mbError, MB_OK);
    if DirExists(SettingsDir) then
      DelTree(SettingsDir, True, True, True);
  end;
end;
