"""The leaderboards shipped with audiobench, as package data (`audiobench.leaderboards`).

`vggsound.json` is the board `audiobench leaderboard render` reads by default; the folder is a
package only so that the wheel carries it.
"""
