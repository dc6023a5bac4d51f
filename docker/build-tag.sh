#!/usr/bin/env bash
# Print the image tag of the checkout as it is: the commit (12 hex digits) when the tree is clean,
# else the commit plus "-dirty-" and a hash of every uncommitted change (tracked diffs and untracked
# files that git does not ignore). A rebuild of different code never reuses a tag that pods
# already run, and rebuilding the same tree gives the same tag.
# Usage: docker/build-tag.sh   (in the checkout)
set -euo pipefail

commit=$(git rev-parse --short=12 HEAD)
if [ -z "$(git status --porcelain)" ]; then
    echo "$commit"
    exit 0
fi
changes=$({
    git diff HEAD --binary
    git ls-files -z --others --exclude-standard | xargs -0 -r sha256sum --
} | sha256sum | cut -c1-12)
echo "$commit-dirty-$changes"
