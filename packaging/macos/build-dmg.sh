#!/usr/bin/env bash
# macOS recipe: candybar.app in a .dmg, signed and notarized when credentials are given.
# Runs on a Mac with Xcode's command line tools and Rust (the CI workflow in
# .github/workflows/macos.yml runs it); nothing here runs on Linux.
#
#   packaging/macos/build-dmg.sh [OUT_DIR]
#
# Environment:
#   TRAY_ONLY=1 (default)       LSUIElement: candybar lives in the menu bar, no Dock icon
#   SIGN_IDENTITY="Developer ID Application: Name (TEAMID)"   sign the app and the dmg
#   NOTARY_PROFILE=name         notarize with a `xcrun notarytool store-credentials` profile,
#                               then staple the ticket
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(cd "${1:-dist}" 2> /dev/null && pwd || (mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd))
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(uname -m)

# A universal binary would need both targets; one per architecture keeps the recipe short.
GGML_NATIVE=OFF cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
app="$work/candybar.app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
cp "${CARGO_TARGET_DIR:-target}/release/candybar" "$app/Contents/MacOS/candybar"
tray_only=true
[ "${TRAY_ONLY:-1}" = 1 ] || tray_only=false
sed -e "s/@VERSION@/$version/g" -e "s/@TRAY_ONLY@/$tray_only/" \
  packaging/macos/Info.plist > "$app/Contents/Info.plist"

# The icon: every size iconutil wants, from the PNGs in assets/icons.
iconset="$work/candybar.iconset"
mkdir -p "$iconset"
for size in 16 32 128 256 512; do
  cp "assets/icons/candybar-$size.png" "$iconset/icon_${size}x${size}.png"
  double=$((size * 2))
  if [ -f "assets/icons/candybar-$double.png" ]; then
    cp "assets/icons/candybar-$double.png" "$iconset/icon_${size}x${size}@2x.png"
  fi
done
iconutil -c icns "$iconset" -o "$app/Contents/Resources/candybar.icns"

if [ -n "${SIGN_IDENTITY:-}" ]; then
  # The hardened runtime with the microphone entitlement: notarization requires both.
  codesign --force --options runtime --timestamp \
    --entitlements packaging/macos/entitlements.plist \
    --sign "$SIGN_IDENTITY" "$app"
  codesign --verify --strict --verbose=2 "$app"
fi

dmg="$out/candybar-$version-macos-$arch.dmg"
staging="$work/dmg"
mkdir -p "$staging"
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
hdiutil create -volname "candybar $version" -srcfolder "$staging" -ov -format UDZO "$dmg"

if [ -n "${SIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$SIGN_IDENTITY" "$dmg"
fi
if [ -n "${NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$dmg" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$dmg"
fi
echo "$dmg"
