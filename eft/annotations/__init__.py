"""eft.annotations"""
